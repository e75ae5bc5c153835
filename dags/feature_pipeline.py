"""
### feature_pipeline — monthly feature ingestion and materialization

For the month of the run's data interval (or the `month` given in the trigger form):

1. **check_catalogue** — the applied Feast repo obeys the data-catalogue policy (no protected or proxy feature
   in a model-input service without a justification).
2. **validate_snapshot** — the month's raw snapshot and labels against the use-case config; bad rows fail
   the task with the rows and columns named, and nothing is written.
3. **write_offline_partition** — one parquet partition per feature view, replaced atomically (rerun-safe).
4. **materialize_window** — the month plus an overlap for late data into the online store; the online store
   keeps the newest row per customer, so replaying an older month never overwrites newer values.

Emits the `fairway_features` Asset. Backfill: `airflow backfill create --dag-id feature_pipeline
--from-date 2024-01-01 --to-date 2024-12-31`. Runs one month at a time (the embedded SQLite online store
takes one writer).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task
from fairway_assets import FEATURES
from fairway_common import DEFAULT_ARGS, MONTHLY, START_DATE, check_catalogue, month_param, run_month, usecase_param


@dag(
    dag_id="feature_pipeline",
    schedule=MONTHLY,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["fairway", "features"],
    params={
        "usecase": usecase_param(),
        "month": month_param("ingest"),
    },  # fmt: skip
)
def feature_pipeline() -> None:
    @task
    def validate_snapshot(params: dict[str, Any], data_interval_start: Any = None) -> dict[str, Any]:
        from fairway.data import validate_month_summary

        return validate_month_summary(params["usecase"], run_month(params, data_interval_start))

    @task
    def write_offline_partition(validated: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        from fairway.features.store import write_offline_partition

        return write_offline_partition(params["usecase"], validated["month"])

    @task(outlets=[FEATURES])
    def materialize_window(
        written: dict[str, Any], params: dict[str, Any], outlet_events: Any = None
    ) -> dict[str, Any]:
        from fairway.features.store import materialize_month

        result = materialize_month(params["usecase"], written["month"])
        outlet_events[FEATURES].extra = {"usecase": params["usecase"], "month": written["month"]}
        return result

    validated = validate_snapshot()
    check_catalogue() >> validated
    materialize_window(write_offline_partition(validated))


feature_pipeline()
