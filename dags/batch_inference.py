"""
### batch_inference — monthly scoring of the month's customers with the champion

1. **pin_champion** — the promotion ledger's champion, checked: the ledger's chain and signatures verify, the
   version is not stopped, the MLflow `champion` alias mirrors it and its gate report is the one approved; the
   whole run scores with that version, even if the alias moves meanwhile. Fails with the reason otherwise.
2. **score_month** — the customers with a snapshot in the month, their model inputs from `credit_model_v1`
   as of the end of the month (point in time), scores and decisions; the month's prediction records
   (pseudonymised subject, score, decision and threshold, model name and version, feature service, data
   interval, input fingerprint, run id) replace the month's partition atomically. The model is loaded from files
   that hash to the ledger's record. Fails with the reason and writes nothing when there is no champion, it was
   stopped, its files changed, or features are missing.

Emits `fairway_predictions`. History: `airflow backfill create --dag-id batch_inference --from-date 2024-07-01
--to-date 2024-12-31`.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task
from fairway_assets import PREDICTIONS
from fairway_common import DEFAULT_ARGS, MONTHLY, START_DATE, month_param, run_month, usecase_param


@dag(
    dag_id="batch_inference",
    schedule=MONTHLY,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["fairway", "inference"],
    params={
        "usecase": usecase_param(),
        "month": month_param("score"),
    },
)
def batch_inference() -> None:
    @task
    def pin_champion(params: dict[str, Any]) -> dict[str, str]:
        from fairway.inference import pin_champion

        return pin_champion(params["usecase"])

    @task(outlets=[PREDICTIONS])
    def score_month(
        pinned: dict[str, str], params: dict[str, Any], run_id: str | None = None, data_interval_start: Any = None,
        outlet_events: Any = None,
    ) -> dict[str, Any]:  # fmt: skip
        from fairway.inference import score_month

        month = run_month(params, data_interval_start)
        scored = score_month(params["usecase"], month, pinned, str(run_id))
        outlet_events[PREDICTIONS].extra = {"usecase": params["usecase"], "month": month, "version": pinned["version"]}
        return scored

    score_month(pin_champion())


batch_inference()
