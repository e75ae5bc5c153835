"""What Fairway's DAG files share: default arguments, start date, the use-case Param and the catalogue check."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, task

# retry_delay comes from [core] default_task_retry_delay (Airflow default: 300 s)
DEFAULT_ARGS = {"owner": "fairway", "retries": 2}
START_DATE = pendulum.datetime(2024, 1, 1, tz="UTC")
MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


def usecase_param() -> Param:
    return Param(
        "credit_risk",
        type="string",
        title="Use case",
        description="Name of the use-case config (include/fairway/usecases/<name>.yaml).",
    )


@task
def check_catalogue(params: dict[str, Any]) -> dict[str, int]:
    """The applied Feast repo obeys the data-catalogue policy (no unjustified protected or proxy model input)."""
    from fairway.features.catalogue import check_usecase

    return check_usecase(params["usecase"])
