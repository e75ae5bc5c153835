"""erasure and retention through real `dag.test()` runs against a real Feast repo (every param passed: dag.test()
keeps the previous run's conf on the DAG object)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pendulum
import pytest

from fairway.config import load_usecase
from fairway.data import read_month
from fairway.records import pseudonym
from tests.champion import dag_bag, feature_store, isolated_home, pin_home


@pytest.fixture(scope="module")
def store_home(tmp_path_factory) -> Path:
    """Three months of 300 customers in both stores (online: the last month)."""
    with isolated_home(tmp_path_factory, "privacy-dags") as home:
        feature_store(load_usecase("credit_risk"), 300, 3, 9, online_months=1)
        yield home


@pytest.fixture
def bag(store_home: Path, monkeypatch: pytest.MonkeyPatch, airflow_db):
    pin_home(monkeypatch, store_home)
    return dag_bag()


def _returned(run, task_id: str):
    return run.get_task_instance(task_id).xcom_pull(task_ids=task_id)


def _rendered_fields(run) -> str:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(RenderedTaskInstanceFields).where(
                RenderedTaskInstanceFields.dag_id == run.dag_id, RenderedTaskInstanceFields.run_id == run.run_id
            )
        ).all()
        return json.dumps([r.rendered_fields for r in rows], default=str)


def test_the_erasure_dag_erases_once_and_returns_no_personal_data(bag, store_home, capfd) -> None:
    uc = load_usecase("credit_risk")
    person = sorted(read_month(uc, "2024-03")[0]["customer_id"])[11]
    dag = bag.get_dag("erasure")
    run = dag.test(run_conf={"usecase": "credit_risk", "customer_id": person},
                   logical_date=pendulum.datetime(2031, 1, 1, tz="UTC"))  # fmt: skip
    assert run.state == "success"
    returned = _returned(run, "erase")
    assert returned["erased"] is True and returned["removed"]["raw_snapshot_rows"] == 3
    assert returned["removed"]["online_store"]["rows"] > 0
    rendered = _rendered_fields(run)
    assert "op_kwargs" in rendered, "the rendered fields were recorded"
    text = json.dumps(returned) + rendered
    logged = capfd.readouterr()
    assert "Returned value was" in logged.out + logged.err, "the task's log is captured here"
    for where in (text, logged.out, logged.err):
        assert person not in where and pseudonym(person) not in where
    # the last step took the id out of the run's conf (dag.test() writes it back afterwards when it merges the
    # task instance and its run into a new session: see tests/dags/test_erasure_everywhere.py)
    assert run.get_task_instance("redact_run_conf").state == "success"
    assert _returned(run, "redact_run_conf")["dag_run_confs_redacted"] == 1
    for month in ("2024-01", "2024-02", "2024-03"):
        assert person not in set(read_month(uc, month)[0]["customer_id"])
    receipts = list((store_home / "records/credit_risk/erasure").iterdir())
    assert [str(p) for p in receipts] == [returned["receipt"]]

    again = dag.test(run_conf={"usecase": "credit_risk", "customer_id": person},
                     logical_date=pendulum.datetime(2031, 1, 2, tz="UTC"))  # fmt: skip
    assert again.state == "success"
    assert _returned(again, "erase")["erased"] is False and "already erased" in _returned(again, "erase")["message"]
    assert list((store_home / "records/credit_risk/erasure").iterdir()) == receipts


def test_the_erasure_form_requires_a_customer_id(bag) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="customer_id"):
        bag.get_dag("erasure").test(run_conf={"usecase": "credit_risk", "customer_id": ""},
                                    logical_date=pendulum.datetime(2031, 1, 3, tz="UTC"))  # fmt: skip


def test_the_retention_dag_deletes_the_expired_months(bag, store_home) -> None:
    uc = load_usecase("credit_risk")
    dag = bag.get_dag("retention")
    # 84 months: as of (the end of) 2030-12 nothing has expired; as of 2031-01 (cutoff 2024-02-01) January has
    for month, expired in (("2030-12", []), ("2031-01", ["2024-01"])):
        run = dag.test(run_conf={"usecase": "credit_risk", "month": month},
                       logical_date=pendulum.datetime(2031, 3, 1, tz="UTC"))  # fmt: skip
        assert run.state == "success"
        counts = _returned(run, "enforce_retention")
        assert counts["as_of"] == month
        assert counts["offline_partitions"] == ({v.name: expired for v in uc.feature_views} if expired else {})
    assert sorted(p.name for p in (store_home / "data/raw/credit_risk").iterdir()) == ["2024-02", "2024-03"]
    for view in uc.feature_views:
        assert sorted(p.stem for p in (store_home / "data/offline/credit_risk" / view.name).glob("*.parquet")) == [
            "2024-02", "2024-03"
        ]  # fmt: skip


def test_the_retention_dag_takes_the_month_of_its_data_interval(bag, store_home) -> None:
    run = bag.get_dag("retention").test(run_conf={"usecase": "credit_risk", "month": None},
                                        logical_date=pendulum.datetime(2031, 4, 1, tz="UTC"))  # fmt: skip
    assert run.state == "success"
    assert run.data_interval_start == pendulum.datetime(2031, 3, 1, tz="UTC")
    counts = _returned(run, "enforce_retention")
    assert counts["as_of"] == "2031-03"
    assert pd.Timestamp(counts["cutoff"]) == pd.Timestamp("2024-04-01", tz="UTC")
