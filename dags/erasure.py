"""
### erasure — erase one person from the use case's stores (GDPR Art. 17), on request

Triggered by hand, with the form: **Use case** and **Customer id**.

1. **erase** — `fairway.privacy.erase`: the person's rows leave the raw snapshots and labels of every month,
   the offline partitions of every feature view, the online store (SQLite rows or the Redis key), the stored
   training frames, the batch prediction records and the decision log (by pseudonym); temporary files of
   interrupted writes are removed; the id and the pseudonym are replaced by `[erased]` in every other file of
   those stores, in Airflow's task logs under FAIRWAY_HOME, in the service's log files, and in Airflow's
   metadata DB (the conf of other runs, the audit log of the trigger form; ids of earlier erasures left in a
   run's conf, as `dag.test()` leaves its run's). MLflow's artifacts and BentoML's
   store are searched (the models' input examples are synthetic; a hit is a warning). A receipt with a one-way
   hash of the id (not the records' pseudonym), the time, the counts per store, what was searched and what is
   kept and why is written under `records/<usecase>/erasure/`; the task returns only its path and the counts.
   A second request for the same person changes nothing and says so.
2. **redact_run_conf** — `fairway.privacy.redact_run_conf`: the last step; the id leaves this run's own conf
   in Airflow's metadata DB (and any audit-log row written since). It runs only after a successful erasure: a
   failed run keeps the id in its conf, so that it can be cleared and run again.

Airflow's metadata DB is reached with a plain SQL connection (`FAIRWAY_AIRFLOW_DB_URL`, else Airflow's own
setting, else its SQLite DB under AIRFLOW_HOME): Airflow 3 gives tasks no ORM access, and its REST API can
neither edit a run's conf nor the audit log.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, task
from fairway_common import DEFAULT_ARGS, START_DATE, usecase_param

DAG_ID = "erasure"


@dag(
    dag_id=DAG_ID,
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
            description="The id (entity key) of the person to erase. The run's last step removes it from this "
            "run's conf.",
        ),
    },
)
def erasure() -> None:
    @task
    def erase(params: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        from fairway.privacy import erase

        run = (DAG_ID, run_id) if run_id else None
        result = erase(params["usecase"], params["customer_id"], airflow_run=run)
        return {key: result[key] for key in ("erased", "message", "receipt", "removed")}

    @task
    def redact_run_conf(params: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        from fairway.privacy import redact_run_conf

        return redact_run_conf(DAG_ID, str(run_id), params["customer_id"])

    erase() >> redact_run_conf()


erasure()
