"""
### retention — delete what is older than its retention period, every month

1. **enforce_retention** — `fairway.privacy.enforce_retention` as of the end of the run's month: prediction
   records, decision-log rows and online-store rows older than the entity's `retention_months`; raw snapshots
   and labels, offline partitions and training-frame rows older than the shortest retention of the entity and
   the personal-data features they hold; temporary files of interrupted writes older than a day, anywhere under
   FAIRWAY_HOME. Returns what it deleted (months and counts).

Trigger form (Params): **Use case** and **Month (YYYY-MM)**; an empty month means the month of the run's data
interval (the month that just ended).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task
from fairway_common import DEFAULT_ARGS, MONTHLY, START_DATE, month_param, run_month, usecase_param


@dag(
    dag_id="retention",
    schedule=MONTHLY,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["fairway", "privacy"],
    params={
        "usecase": usecase_param(),
        "month": month_param("enforce the retention periods as of (its end)"),
    },
)
def retention() -> None:
    @task
    def enforce_retention(params: dict[str, Any], data_interval_start: Any = None) -> dict[str, Any]:
        from fairway.privacy import enforce_retention

        return enforce_retention(params["usecase"], run_month(params, data_interval_start))

    enforce_retention()


retention()
