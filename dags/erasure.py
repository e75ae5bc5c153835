"""
### erasure — erase one person from the use case's stores (GDPR Art. 17), on request

Triggered by hand, with the form: **Use case** and **Customer id**.

1. **erase** — `fairway.privacy.erase`: the person's rows leave the raw snapshots and labels of every month,
   the offline partitions of every feature view, the online store (SQLite rows or the Redis key), the stored
   training frames, the batch prediction records and the decision log (by pseudonym), and Fairway's Airflow
   task logs under FAIRWAY_HOME. A receipt with a one-way hash of the id (not the records' pseudonym), the
   time and the counts per store is written under `records/<usecase>/erasure/`; the task returns only its
   path and the counts. A second request for the same person changes nothing and says so.

Trained models stay: they hold no record of the person, and the next training run builds its frame without
them. The id given in the form stays in this run's conf in Airflow's metadata DB: delete the run afterwards
(`DELETE /api/v2/dags/erasure/dagRuns/{run_id}`) or use `fairway erase --customer-id ...` instead.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, task
from fairway_common import DEFAULT_ARGS, START_DATE, usecase_param


@dag(
    dag_id="erasure",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["fairway", "privacy"],
    params={
        "usecase": usecase_param(),
        "customer_id": Param(
            type="string",
            minLength=1,
            title="Customer id",
            description="The id (entity key) of the person to erase. It is kept in this run's conf: delete the run "
            "afterwards.",
        ),
    },
)
def erasure() -> None:
    @task
    def erase(params: dict[str, Any]) -> dict[str, Any]:
        from fairway.privacy import erase

        return erase(params["usecase"], params["customer_id"])

    erase()


erasure()
