"""dags/fairway_common.py: what the DAGs share, tested without a DAG run."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from types import SimpleNamespace

from tests.conftest import DAGS

sys.path.insert(0, str(DAGS))
from fairway_common import triggered_by  # noqa: E402


def _event(day: int, month: str) -> SimpleNamespace:
    return SimpleNamespace(
        timestamp=datetime(2024, 8, day, tzinfo=UTC), extra={"usecase": "credit_risk", "month": month}
    )


def test_the_latest_event_wins_whatever_order_airflow_hands_them_over() -> None:
    events = [_event(3, "2024-08"), _event(9, "2024-09"), _event(1, "2024-07")]
    assert triggered_by({"fairway_predictions": events})["month"] == "2024-09"
    assert triggered_by({"fairway_predictions": list(reversed(events))})["month"] == "2024-09"
    assert triggered_by(None) == {} and triggered_by({}) == {}
