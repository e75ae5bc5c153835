"""Run Fairway's DAGs in this process, as the scheduler would, for the demo and the tests.

- `run(dag_id, conf)`: one run of a DAG through `dag.test()` (a real DagRun in the metadata DB, real tasks).
- `run_triggered()`: the runs that Airflow's scheduler creates from queued asset events (its own code,
  `SchedulerJobRunner._create_dag_runs_asset_triggered`, with the consumed events attached to the run), each then
  executed with `dag.test()`'s task loop. Asset-scheduled DAGs are only queued while unpaused: `unpause()`.

With `airflow standalone` or a real scheduler none of this is needed: the scheduler does it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from unittest import mock

PROJECT = Path(__file__).resolve().parents[1]
DAGS = PROJECT / "dags"


def dagbag() -> Any:
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS)


def run(dag_id: str, conf: dict[str, Any]) -> Any:
    """One DagRun of `dag_id` with `conf` (pass every param: dag.test() keeps the previous conf otherwise)."""
    return dagbag().get_dag(dag_id).test(run_conf=conf)


def unpause(dag_ids: Iterable[str], paused: bool = False) -> None:
    """Unpause (or pause again) DAGs, as the toggle in the UI does."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id.in_(list(dag_ids))).values(is_paused=paused))


def create_triggered_runs(dag_ids: Iterable[str] | None = None) -> list[Any]:
    """The scheduler's step that turns queued asset events into asset-triggered DagRuns (of `dag_ids` only, when
    given); returns the queued runs (of those DAGs)."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    with create_session() as session:
        query, triggered = DagModel.dags_needing_dagruns(session)
        wanted = None if dag_ids is None else set(dag_ids)
        models = [d for d in query.all() if d.dag_id in triggered and (wanted is None or d.dag_id in wanted)]
        if models:
            SchedulerJobRunner(job=Job())._create_dag_runs_asset_triggered(dag_models=models, session=session)
        session.commit()
        runs = session.scalars(select(DagRun).where(DagRun.state == DagRunState.QUEUED).order_by(DagRun.id)).all()
        session.expunge_all()
        return list(runs)


def execute(run_: Any) -> Any:
    """Execute an existing (queued) DagRun with dag.test()'s task loop; returns it finished."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    with create_session() as session:
        existing = session.scalar(select(DagRun).where(DagRun.id == run_.id))
        existing.state = DagRunState.RUNNING
        session.commit()

    def same_run(*, dag: Any, session: Any, **_: Any) -> Any:
        found = session.scalar(select(DagRun).where(DagRun.id == run_.id))
        found.dag = dag
        return found

    with mock.patch("airflow.models.dagrun.get_or_create_dagrun", same_run):
        return dagbag().get_dag(run_.dag_id).test()


def run_triggered(limit: int = 20) -> list[Any]:
    """Create and execute asset-triggered runs until none is queued (a run's outlets may queue further DAGs)."""
    finished = []
    for _ in range(limit):
        queued = create_triggered_runs()
        if not queued:
            break
        for run_ in queued:
            finished.append(execute(run_))
    return finished
