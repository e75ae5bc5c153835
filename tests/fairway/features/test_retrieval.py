"""Point-in-time correctness of the training frame, checked against an independent pandas merge_asof."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from fairway.data import available_months, generate, read_month
from fairway.features.retrieval import historical_features, merge_asof_frame
from fairway.features.store import apply_repo, get_store, write_offline_partition


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), None)


@pytest.fixture
def history(home, usecase):
    generate(usecase, customers=2000, n_months=6, seed=3, drift_month=5)
    apply_repo(usecase)
    for month in available_months(usecase):
        write_offline_partition(usecase, month)
    raw = pd.concat([read_month(usecase, m)[0] for m in available_months(usecase)], ignore_index=True)
    return raw


def _entity_rows(raw: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    known = raw["customer_id"].unique()
    ids = rng.choice(np.concatenate([known, [f"X{i:06d}" for i in range(200)]]), n)
    start = pd.Timestamp("2023-12-01", tz="UTC")
    span = (pd.Timestamp("2024-11-15", tz="UTC") - start).total_seconds()
    times = start + pd.to_timedelta(rng.uniform(0, span, n), unit="s")
    # a share of rows sits exactly on a snapshot's timestamp: the "at or before" edge
    exact = rng.choice(len(raw), n // 10)
    ids[: n // 10] = raw["customer_id"].to_numpy()[exact]
    times = pd.Series(times).astype("datetime64[us, UTC]")
    times.iloc[: n // 10] = raw["snapshot_ts"].to_numpy()[exact]
    return pd.DataFrame({"customer_id": ids, "snapshot_ts": times})


def test_training_frame_equals_merge_asof_for_12k_entity_rows(history, usecase) -> None:
    raw = history
    entity_rows = _entity_rows(raw, 12_000, seed=1)
    service = usecase.service("model_input")
    columns = list(service.features)
    ttl = timedelta(days=usecase.view("customer_financials").ttl_days)

    feast_frame = historical_features(get_store(usecase), usecase, entity_rows, service.name)
    reference = merge_asof_frame(entity_rows, raw, "customer_id", "snapshot_ts", columns, ttl)

    assert len(feast_frame) == len(entity_rows) == len(reference), "no entity row may be dropped"
    missing = reference[columns[0]].isna()
    assert missing.sum() > 1500, "the sample must include rows with no value inside the TTL"
    assert (~missing).sum() > 6000
    pd.testing.assert_frame_equal(
        _normalise(feast_frame[["customer_id", *columns]]), _normalise(reference[["customer_id", *columns]])
    )


def test_protected_attributes_come_from_the_audit_service_only(history, usecase) -> None:
    entity_rows = _entity_rows(history, 500, seed=2)
    audit = historical_features(get_store(usecase), usecase, entity_rows, "fairness_audit_v1")
    assert {"sex", "age", "citizenship"} <= set(audit.columns)
    model = historical_features(get_store(usecase), usecase, entity_rows, "credit_model_v1")
    assert not {"sex", "age", "citizenship"} & set(model.columns)


def test_entity_rows_need_key_and_timestamp(history, usecase) -> None:
    with pytest.raises(ValueError, match=r"\['snapshot_ts'\]"):
        historical_features(get_store(usecase), usecase, pd.DataFrame({"customer_id": ["C0000001"]}), "credit_model_v1")


def test_a_single_time_membership_finds_the_rows_the_asof_join_finds() -> None:
    """rows_found's fast path (one time for every row, as a batch month) against the as-of join, with feature
    rows exactly at the time, exactly at the TTL's edge, a microsecond outside either end, and keys repeated."""
    from fairway.features.retrieval import _has_row_within

    at, ttl = pd.Timestamp("2024-03-31 23:59:59.999999", tz="UTC"), timedelta(days=40)
    edges = [at, at - ttl, at + pd.Timedelta(microseconds=1), at - ttl - pd.Timedelta(microseconds=1)]
    rng = np.random.default_rng(7)
    keys = [f"C{i:04d}" for i in range(300)]
    known = pd.DataFrame({
        "customer_id": [keys[i] for i in rng.integers(0, 300, 400)] + keys[:4],
        "snapshot_ts": [at - pd.Timedelta(days=int(d)) for d in rng.integers(-5, 60, 400)] + edges,
    })  # fmt: skip
    rows = pd.DataFrame({"customer_id": keys + ["X0000001"], "snapshot_ts": at})
    times = rows["snapshot_ts"]
    fast = _has_row_within(rows, times, known, "customer_id", "snapshot_ts", ttl)
    joined = _has_row_within(rows, times, known, "customer_id", "snapshot_ts", ttl, asof=True)
    assert fast.tolist() == joined.tolist()
    assert fast[:2].all() and 0 < fast.sum() < len(rows) and not fast[-1]
