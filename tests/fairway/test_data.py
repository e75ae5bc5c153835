import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from fairway.config import Paths
from fairway.data import (
    LABELS_FILE,
    SNAPSHOT_FILE,
    SnapshotValidationError,
    available_months,
    generate,
    is_missing,
    missing_as_nan,
    read_month,
    validate_month,
)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.parquet"))
    }


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory, usecase_module):
    """3,000 customers over 10 months, drift from month 8: big enough for stable statistics."""
    out = Paths(tmp_path_factory.mktemp("portfolio"))
    generate(usecase_module, customers=3000, n_months=10, seed=11, drift_month=8, out=out)
    months = available_months(usecase_module, out)
    snapshots, labels = zip(*(read_month(usecase_module, m, out) for m in months), strict=True)
    snap = pd.concat([s.assign(month=m) for s, m in zip(snapshots, months, strict=True)], ignore_index=True)
    lab = pd.concat([frame.assign(delivered=m) for frame, m in zip(labels, months, strict=True)], ignore_index=True)
    return months, snap, lab


@pytest.fixture(scope="module")
def usecase_module():
    from fairway.config import load_usecase

    return load_usecase("credit_risk")


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path, usecase) -> None:
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate(usecase, customers=300, n_months=3, seed=seed, drift_month=2, out=Paths(tmp_path / name))
        runs[name] = _digest(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert len(runs["a"]) == 6
    assert runs["a"] != runs["c"]


def test_snapshots_have_the_configured_schema_and_microsecond_utc_times(portfolio, usecase_module) -> None:
    months, snap, lab = portfolio
    assert months == [f"2024-{m:02d}" for m in range(1, 11)]
    assert str(snap["snapshot_ts"].dtype) == "datetime64[us, UTC]"
    assert str(lab["label_ts"].dtype) == "datetime64[us, UTC]"
    expected = ["customer_id", "snapshot_ts", *[f.name for f in usecase_module.snapshot_features]]
    assert list(snap.columns[: len(expected)]) == expected
    assert (snap["snapshot_ts"].dt.strftime("%Y-%m") == snap["month"]).all()


def test_customers_join_and_leave_and_features_evolve(portfolio) -> None:
    months, snap, _ = portfolio
    first = set(snap.loc[snap.month == months[0], "customer_id"])
    last = set(snap.loc[snap.month == months[-1], "customer_id"])
    assert len(first - last) > 100, "some customers must leave"
    assert len(last - first) > 100, "some customers must join"
    stayers = snap[snap.customer_id.isin(first & last)].sort_values(["customer_id", "snapshot_ts"])
    income_changes = stayers.groupby("customer_id")["income"].nunique()
    assert (income_changes > 1).mean() > 0.9
    ages = stayers.groupby("customer_id")["age"].agg(["min", "max"])
    assert ((ages["max"] - ages["min"]).between(0, 1)).all()


def test_labels_arrive_one_month_after_their_snapshot(portfolio) -> None:
    months, snap, lab = portfolio
    assert lab[lab.delivered == months[0]].empty, "nothing is known in the first month"
    merged = lab.merge(snap[["customer_id", "snapshot_ts", "month"]], on=["customer_id", "snapshot_ts"], how="left")
    assert merged["month"].notna().all(), "every label refers to a real snapshot"
    lag = pd.PeriodIndex(merged["delivered"], freq="M") - pd.PeriodIndex(merged["month"], freq="M")
    assert {x.n for x in lag} == {1}
    assert (merged["label_ts"] > merged["snapshot_ts"]).all()
    previous = snap[snap.month == months[-2]]
    assert len(lab[lab.delivered == months[-1]]) == len(previous)


def _labelled(snap: pd.DataFrame, lab: pd.DataFrame) -> pd.DataFrame:
    return snap.merge(lab[["customer_id", "snapshot_ts", "default_12m"]], on=["customer_id", "snapshot_ts"])


def test_labels_carry_bias_against_foreign_citizens_beyond_financial_risk(portfolio, usecase_module) -> None:
    _, snap, lab = portfolio
    data = _labelled(snap, lab)
    numeric = [f for f in usecase_module.model_inputs if usecase_module.feature(f).dtype != "string"]
    x = StandardScaler().fit_transform(np.log1p(data[numeric].clip(lower=0)))
    foreign = (data["citizenship"] == "foreign").to_numpy(dtype=float)[:, None]
    model = LogisticRegression(max_iter=2000).fit(np.hstack([x, foreign]), data["default_12m"])
    assert model.coef_[0][-1] > 1.0, "at equal financial features, foreign citizens carry more recorded defaults"
    east = data["residential_area"] == "east"
    assert (data.loc[east, "citizenship"] == "foreign").mean() > 0.6, "the residential area is a proxy for citizenship"


def test_a_naive_model_fails_the_four_fifths_rule_on_citizenship(portfolio, usecase_module) -> None:
    months, snap, lab = portfolio
    data = _labelled(snap, lab)
    inputs = usecase_module.model_inputs
    categorical = [f for f in inputs if usecase_module.feature(f).dtype == "string"]
    numeric = [f for f in inputs if f not in categorical]
    train, test = data[data.month < months[5]], data[data.month == months[5]]
    model = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), numeric), ("cat", OneHotEncoder(), categorical)]),
        LogisticRegression(max_iter=2000),
    ).fit(train[inputs], train["default_12m"])
    approved = model.predict_proba(test[inputs])[:, 1] < usecase_module.gate.decision_threshold
    foreign = test["citizenship"].to_numpy() == "foreign"
    disparate_impact = approved[foreign].mean() / approved[~foreign].mean()
    assert disparate_impact < 0.8
    female = test["sex"].to_numpy() == "female"
    assert approved[female].mean() / approved[~female].mean() > 0.8, "the bias is specific, not everywhere"


def test_drift_starts_in_the_drift_month_and_not_before(portfolio) -> None:
    months, snap, _ = portfolio
    by_month = snap.groupby("month").agg(
        income=("income", "median"), permanent=("employment_type", lambda s: (s == "permanent").mean())
    )
    change = by_month.pct_change().iloc[1:]
    before, at = change.loc[months[1] : months[6]], change.loc[months[7]]
    assert before["income"].abs().max() < 0.05
    assert before["permanent"].abs().max() < 0.05
    assert at["income"] < -0.15
    assert at["permanent"] < -0.2


def _write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def test_valid_month_passes(home: Path, usecase) -> None:
    generate(usecase, customers=200, n_months=2, seed=1)
    first, _ = read_month(usecase, "2024-01")
    snapshot, labels = read_month(usecase, "2024-02")
    assert len(labels) == len(first) == 200
    summary = validate_month(usecase, "2024-02").summary()
    assert summary == {"month": "2024-02", "snapshot_rows": len(snapshot), "label_rows": 200}


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (
            lambda s: s.assign(income=s["income"].where(s.index != 3, -5.0)),
            r"'income': 1 row\(s\) are below the minimum 0: row 3 \(customer_id=C",
        ),
        (
            lambda s: s.assign(housing=s["housing"].where(s.index != 7, "boat")),
            r"'housing': 1 row\(s\) hold values outside",
        ),
        (lambda s: s.drop(columns=["debt_ratio"]), r"missing column 'debt_ratio'"),
        (
            lambda s: s.assign(customer_id=s["customer_id"].where(s.index != 2, s.at[1, "customer_id"])),
            r"2 row\(s\) repeat a key",
        ),
        (
            lambda s: s.assign(snapshot_ts=s["snapshot_ts"] + pd.Timedelta(days=40)),
            r"'snapshot_ts': \d+ row\(s\) fall outside 2024-02",
        ),
        (lambda s: s.assign(snapshot_ts=s["snapshot_ts"].dt.tz_localize(None)), r"timezone-aware"),
        (
            lambda s: s.assign(age=s["age"].astype(float).where(s.index != 4, np.nan)),
            r"'age': 1 row\(s\) are empty: row 4",
        ),
        (
            lambda s: s.assign(tenure_months=s["tenure_months"] + 0.5),
            r"'tenure_months': \d+ row\(s\) are not whole numbers",
        ),
    ],
)
def test_corrupt_snapshot_names_rows_and_columns(home: Path, usecase, corrupt, expected: str) -> None:
    generate(usecase, customers=200, n_months=2, seed=1)
    path = home / "data" / "raw" / "credit_risk" / "2024-02" / SNAPSHOT_FILE
    _write(corrupt(pd.read_parquet(path)), path)
    with pytest.raises(SnapshotValidationError, match=expected):
        validate_month(usecase, "2024-02")


def test_corrupt_labels_and_missing_files(home: Path, usecase) -> None:
    generate(usecase, customers=200, n_months=2, seed=1)
    folder = home / "data" / "raw" / "credit_risk" / "2024-02"
    labels = pd.read_parquet(folder / LABELS_FILE)
    _write(labels.assign(default_12m=labels["default_12m"].where(labels.index != 0, 7)), folder / LABELS_FILE)
    with pytest.raises(
        SnapshotValidationError, match=r"labels.parquet: column 'default_12m': 1 row\(s\) are above the maximum 1"
    ):
        validate_month(usecase, "2024-02")
    (folder / SNAPSHOT_FILE).unlink()
    with pytest.raises(SnapshotValidationError, match="raw data for 2024-02 is missing"):
        validate_month(usecase, "2024-02")
    (folder / SNAPSHOT_FILE).write_bytes(b"not parquet")
    with pytest.raises(SnapshotValidationError, match="cannot be read"):
        validate_month(usecase, "2024-02")


def test_generator_refuses_a_usecase_it_cannot_fill(usecase) -> None:
    other = usecase.model_copy(update={"features": usecase.features[1:]})
    with pytest.raises(ValueError, match="missing \\['income'\\]"):
        generate(other, customers=10, n_months=1, seed=0)


def test_missing_values_become_nan_and_complete_columns_are_left_alone() -> None:
    frame = pd.DataFrame({
        "n": pd.array([1, None], dtype="Int64"), "c": ["x", None], "none": [None, None], "i": [3, 4],
        "f": [1.5, np.nan], "s": ["a", "b"],
    })  # fmt: skip
    out = missing_as_nan(frame, numeric=["none"])
    assert {c: str(t) for c, t in out.dtypes.items()} == {
        "n": "float64", "c": "object", "none": "float64", "i": "int64", "f": "float64", "s": "object"}  # fmt: skip
    assert out["c"].iloc[1] is not None and np.isnan(out["c"].iloc[1]) and out["c"].iloc[0] == "x"
    assert out["n"].tolist()[0] == 1.0 and np.isnan(out["n"].iloc[1])
    assert frame["c"].iloc[1] is None, "the input frame is not changed"
    assert [is_missing(v) for v in (None, np.nan, pd.NA, pd.NaT, "", 0, False)] == [True] * 4 + [False] * 3
