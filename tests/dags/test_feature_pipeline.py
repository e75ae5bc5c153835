"""feature_pipeline through real `dag.test()` runs against a real Feast repo."""

import hashlib
import sqlite3
from pathlib import Path

import pandas as pd
import pendulum
import pytest

from fairway.data import SNAPSHOT_FILE, read_month
from fairway.features.store import get_store
from tests.champion import dag_bag


@pytest.fixture(scope="module")
def dag(airflow_db):
    return dag_bag().get_dag("feature_pipeline")


def _run(dag, month: str | None = None, logical_date=None):
    # always pass every param: dag.test() keeps the previous run's conf on the DAG object
    conf = {"usecase": "credit_risk", "month": month}
    run = dag.test(run_conf=conf, logical_date=logical_date or pendulum.datetime(2030, 1, 1, tz="UTC"))
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}


def _online_rows(home: Path) -> list[tuple]:
    with sqlite3.connect(home / "feast" / "credit_risk" / "online.db") as conn:
        return conn.execute(
            "SELECT * FROM credit_risk_customer_financials ORDER BY entity_key, feature_name"
        ).fetchall()


def _offline_digest(home: Path) -> dict[str, str]:
    root = home / "data" / "offline"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


def test_two_months_then_the_older_again_keeps_the_newest_online(dag, small_store, usecase) -> None:
    for month in ("2024-02", "2024-03", "2024-02"):
        run, states = _run(dag, month)
        assert run.state == "success", states
    assert sorted(p.name for p in (small_store / "data/offline/credit_risk/customer_financials").glob("*.parquet")) == [
        "2024-02.parquet", "2024-03.parquet"
    ]  # fmt: skip
    march = read_month(usecase, "2024-03")[0].set_index("customer_id")
    ids = sorted(march.index[:40])
    store = get_store(usecase)
    online = (
        store.get_online_features(
            features=store.get_feature_service("credit_model_v1"), entity_rows=[{"customer_id": i} for i in ids]
        )
        .to_df()
        .set_index("customer_id")
    )
    pd.testing.assert_series_equal(online["income"], march.loc[ids, "income"], check_names=False)


def test_the_data_interval_picks_the_month(dag, small_store) -> None:
    run, _ = _run(dag, month=None, logical_date=pendulum.datetime(2024, 4, 1, tz="UTC"))
    assert run.state == "success"
    assert run.data_interval_start == pendulum.datetime(2024, 3, 1, tz="UTC")
    assert (small_store / "data/offline/credit_risk/customer_financials/2024-03.parquet").is_file()


def test_a_corrupt_snapshot_fails_and_changes_no_store(dag, small_store, usecase) -> None:
    run, _ = _run(dag, "2024-02")
    assert run.state == "success"
    offline_before, online_before = _offline_digest(small_store), _online_rows(small_store)

    for month in ("2024-02", "2024-03"):  # a replay of a good month, and a new month
        path = small_store / "data/raw/credit_risk" / month / SNAPSHOT_FILE
        frame = pd.read_parquet(path)
        frame.loc[5, "debt_ratio"] = -1.0
        frame.to_parquet(path, index=False)
        run, states = _run(dag, month)
        assert run.state == "failed"
        assert states["validate_snapshot"] == "failed"
        assert states["write_offline_partition"] == "upstream_failed"
        assert states["materialize_window"] == "upstream_failed"

    assert _offline_digest(small_store) == offline_before
    assert _online_rows(small_store) == online_before


def test_a_missing_feature_repo_fails_the_catalogue_check(dag, home, usecase) -> None:
    from fairway.data import generate

    generate(usecase, customers=50, n_months=2, seed=1)
    run, states = _run(dag, "2024-02")
    assert run.state == "failed"
    assert states["check_catalogue"] == "failed"
    assert not (home / "data" / "offline" / "credit_risk").exists()


def test_each_run_emits_the_features_asset_with_its_month(dag, small_store) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    for month in ("2024-01", "2024-02"):
        assert _run(dag, month)[0].state == "success"
    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == "fairway_features")
            .order_by(AssetEvent.id.desc())
            .limit(2)
            .all()
        )
        assert [e.extra for e in reversed(events)] == [
            {"usecase": "credit_risk", "month": "2024-01"},
            {"usecase": "credit_risk", "month": "2024-02"},
        ]


def test_a_malformed_month_is_refused_by_the_trigger_form(dag, small_store) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="month"):
        dag.test(
            run_conf={"usecase": "credit_risk", "month": "2024-1"}, logical_date=pendulum.datetime(2030, 2, 1, tz="UTC")
        )
