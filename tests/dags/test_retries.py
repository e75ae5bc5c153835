"""Retry delay: every Fairway task, mapped or not, waits [core] default_task_retry_delay between tries, as the
scheduler side sees it both in `dag.test()` and from the serialized DAG in the DB.

Airflow 3.3.2: a mapped `@task` keeps no `retry_delay` of its own unless default_args set one; the DB copy restores
the configured value from the serialized `client_defaults`, but `dag.test()` rebuilds its scheduler DAG with
`DagSerialization.deserialize_dag(DagSerialization.serialize_dag(self))`, without them, so the mapped task fell back
to SerializedBaseOperator's hard-coded 300 s. dags/fairway_common.py sets `retry_delay` explicitly.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pendulum
import pytest

from tests.champion import dag_bag

MAPPED = {("training", "train_candidate")}  # Fairway's mapped tasks (at least these)


class _Captured(Exception):
    """Stops `dag.test()` once it has built its scheduler DAG."""


def _dag_test_scheduler_dag(dag: Any) -> Any:
    """The scheduler-side DAG `dag.test()` runs against (dep checks, next_retry_datetime), without running it."""
    from airflow.serialization.definitions.dag import SerializedDAG

    def stop(dags: Any, **_: Any) -> None:
        raise _Captured(list(dags)[0])

    with mock.patch.object(SerializedDAG, "clear_dags", side_effect=stop), pytest.raises(_Captured) as captured:
        dag.test()
    return captured.value.args[0]


@pytest.fixture(scope="module")
def scheduler_dags(airflow_db) -> dict[str, dict[str, Any]]:
    """Each Fairway DAG as the scheduler side sees it: in `dag.test()` and read back from the DB."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.models.serialized_dag import SerializedDagModel

    bag = dag_bag()
    assert not bag.import_errors, bag.import_errors
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    return {
        dag_id: {"dag.test()": _dag_test_scheduler_dag(dag), "DB": SerializedDagModel.get(dag_id).dag}
        for dag_id, dag in bag.dags.items()
    }


def _configured() -> timedelta:
    from airflow.sdk import conf

    return timedelta(seconds=conf.getint("core", "default_task_retry_delay"))


def test_the_suite_configures_a_short_retry_delay() -> None:
    assert _configured() == timedelta(seconds=1)  # tests/conftest.py; Airflow's default would be 300 s


def test_every_task_mapped_or_not_waits_the_configured_retry_delay(scheduler_dags: dict) -> None:
    seen_mapped = set()
    for dag_id, views in scheduler_dags.items():
        for view, dag in views.items():
            for task in dag.tasks:
                if task.is_mapped:
                    seen_mapped.add((dag_id, task.task_id))
                assert task.retry_delay == _configured(), (view, dag_id, task.task_id, task.retry_delay)
    assert MAPPED <= seen_mapped, seen_mapped


def test_a_failed_train_candidate_is_retried_after_the_configured_delay(scheduler_dags: dict) -> None:
    from airflow.models.taskinstance import TaskInstance

    failed_at = pendulum.datetime(2031, 1, 1, tz="UTC")
    for view, dag in scheduler_dags["training"].items():
        ti = TaskInstance(task=dag.get_task("train_candidate"), dag_version_id=None, run_id="r", map_index=0)
        ti.try_number, ti.end_date = 1, failed_at
        assert ti.next_retry_datetime() == failed_at + _configured(), view
