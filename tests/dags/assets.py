"""Asset-scheduled DAGs between the tests of a module that runs a lifecycle through `dag.test()`."""

from __future__ import annotations

import sys

from tests.conftest import PROJECT

sys.path.insert(0, str(PROJECT / "include"))
import local_runs  # noqa: E402


def pause_and_forget(dag_ids: list[str]) -> None:
    """Paused as `make demo` finds them (Airflow's test mode creates DAGs unpaused), and without the asset events
    of earlier test modules: an asset-triggered run consumes every event of its assets since the DAG's previous
    asset-triggered run, and earlier modules' events name their own use cases and months."""
    local_runs.unpause(dag_ids, paused=True)
    forget_events(dag_ids)


def forget_events(dag_ids: list[str]) -> None:
    """The queued asset events of these DAGs' schedules deleted (their paused state left as it is): what a module
    leaves behind for the next one, or what it must not consume from the modules before it."""
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, DagScheduleAssetReference
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    with create_session() as session:
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id.in_(dag_ids)))
        assets = select(DagScheduleAssetReference.asset_id).where(DagScheduleAssetReference.dag_id.in_(dag_ids))
        session.execute(delete(AssetEvent).where(AssetEvent.asset_id.in_(assets)))
