"""Missing values end to end: a use case with a nullable float (income), int (late_payments_12m) and category
(housing), its raw months with missing cells, validation, the Feast offline and online stores, batch scoring and
the online scorer, with a scikit-learn pipeline that imputes (the model side is the pipeline's, as in training)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import ValidationError

from fairway.config import BUILTIN_USECASES_DIR, Paths, load_usecase
from fairway.data import (
    LABELS_FILE,
    SNAPSHOT_FILE,
    SnapshotValidationError,
    generate,
    missing_as_nan,
    read_month,
    to_arrow,
    validate_month,
    write_parquet_atomic,
)

NAME = "credit_nulls"
NULLABLE = {"income": "float", "late_payments_12m": "int", "housing": "string"}
MONTHS = ["2024-01", "2024-02", "2024-03"]


def nullable_usecase(home) -> None:
    """credit_risk with income, late_payments_12m and housing declared nullable, as FAIRWAY_HOME's use case."""
    raw = yaml.safe_load((BUILTIN_USECASES_DIR / "credit_risk.yaml").read_text())
    raw.update(name=NAME, model_name="credit-nulls")
    for feature in raw["features"]:
        if feature["name"] in NULLABLE:
            feature["nullable"] = True
    (home / "usecases").mkdir(parents=True, exist_ok=True)
    (home / "usecases" / f"{NAME}.yaml").write_text(yaml.safe_dump(raw))


def punch_holes(frame: pd.DataFrame, month: str) -> pd.DataFrame:
    """Missing cells in the three nullable columns; the int one as pandas Int64, or (February) as float64 with
    NaN, both representations a raw file may hold."""
    rows = np.arange(len(frame))
    late = frame["late_payments_12m"].astype("float64" if month == "2024-02" else "Int64")
    return frame.assign(
        income=frame["income"].where(rows % 3 != 0),
        late_payments_12m=late.where(rows % 4 != 1),
        housing=frame["housing"].where(rows % 5 != 2, None),
    )


def imputing_pipeline(uc):  # noqa: ANN001, ANN201
    """Median and a missing indicator for numbers, a `missing` level for categories, then logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [f for f in uc.model_inputs if uc.feature(f).dtype == "string"]
    numeric = [f for f in uc.model_inputs if f not in categorical]
    numbers = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    categories = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")
    )
    prep = ColumnTransformer([("numeric", numbers, numeric), ("categorical", categories, categorical)])
    return make_pipeline(prep, LogisticRegression(max_iter=2000))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three months of 400 customers with holes, in the offline store (every month) and online (March), and a
    model fitted on January's snapshots (retrieved through Feast) with their outcomes."""
    from fairway.explanations import reference_point
    from fairway.features.retrieval import historical_features
    from fairway.features.store import apply_repo, get_store, materialize_month, write_offline_partition
    from tests.champion import isolated_home

    with isolated_home(tmp_path_factory, "nullable") as home:
        nullable_usecase(home)
        uc = load_usecase(NAME)
        generate(uc, customers=400, n_months=3, seed=5)
        for month in MONTHS:
            path = home / "data" / "raw" / NAME / month / SNAPSHOT_FILE
            write_parquet_atomic(to_arrow(punch_holes(pd.read_parquet(path), month)), path)
        apply_repo(uc)
        for month in MONTHS:
            write_offline_partition(uc, month)
        materialize_month(uc, MONTHS[-1])
        _, labels = read_month(uc, "2024-02")
        train = historical_features(get_store(uc), uc, labels[["customer_id", "snapshot_ts"]], "credit_model_v1")
        train = train.assign(default_12m=labels["default_12m"].to_numpy())
        model = imputing_pipeline(uc).fit(train[uc.model_inputs], train["default_12m"])
        integers = [f for f in uc.model_inputs if uc.feature(f).dtype == "int"]
        reference = reference_point(train, uc.model_inputs, integers)
        yield {"uc": uc, "home": home, "model": model, "reference": reference, "train": train}


def _raw(world, month: str) -> pd.DataFrame:
    return read_month(world["uc"], month)[0]


# --- validation -------------------------------------------------------------------------------------------------


def test_months_with_missing_values_in_nullable_features_are_valid(world) -> None:
    for month in MONTHS:
        snapshot = _raw(world, month)
        assert snapshot[list(NULLABLE)].isna().any().all()
        assert validate_month(world["uc"], month).summary()["snapshot_rows"] == len(snapshot)
    assert str(_raw(world, "2024-01")["late_payments_12m"].dtype) == "Int64"
    assert str(_raw(world, "2024-02")["late_payments_12m"].dtype) == "float64"


def _corrupt_copy(world, tmp_path, change) -> Paths:
    """February's raw files under another home, the snapshot changed by `change`."""
    out = Paths(tmp_path)
    folder = out.raw_month(NAME, "2024-02")
    folder.mkdir(parents=True)
    shutil.copy(world["home"] / "data" / "raw" / NAME / "2024-02" / LABELS_FILE, folder / LABELS_FILE)
    change(_raw(world, "2024-02")).to_parquet(folder / SNAPSHOT_FILE, index=False)
    return out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda s: s.assign(debt_ratio=s["debt_ratio"].where(s.index != 4)),
            r"'debt_ratio': 1 row\(s\) are empty: row 4 \(customer_id=C\d+\); 'debt_ratio' is not nullable",
        ),
        (
            lambda s: s.assign(employment_type=s["employment_type"].where(s.index != 6, None)),
            r"'employment_type': 1 row\(s\) are empty: row 6 .*not nullable",
        ),
        (
            lambda s: s.assign(tenure_months=s["tenure_months"].astype("Int64").where(s.index != 8)),
            r"'tenure_months': 1 row\(s\) are empty: row 8 .*not nullable",
        ),
        (  # the rules still hold for the values present in a nullable feature
            lambda s: s.assign(income=s["income"].where(s.index != 3, -1.0)),
            r"'income': 1 row\(s\) are below the minimum 0: row 3",
        ),
        (
            lambda s: s.assign(late_payments_12m=s["late_payments_12m"].where(s.index != 5, 2.5)),
            r"'late_payments_12m': 1 row\(s\) are not whole numbers: row 5",
        ),
        (
            lambda s: s.assign(late_payments_12m=s["late_payments_12m"].where(s.index != 2, 13)),
            r"'late_payments_12m': 1 row\(s\) are above the maximum 12: row 2",
        ),
        (
            lambda s: s.assign(housing=s["housing"].where(s.index != 7, "boat")),
            r"'housing': 1 row\(s\) hold values outside",
        ),
        (lambda s: s.assign(income="n/a"), r"'income': expected float, found object"),
    ],
    ids=["null float", "null category", "null Int64", "range", "fraction", "max", "allowed", "type"],
)
def test_non_nullable_features_refuse_nulls_and_rules_hold_for_present_values(world, tmp_path, change, expected):
    out = _corrupt_copy(world, tmp_path, change)
    with pytest.raises(SnapshotValidationError, match=expected):
        validate_month(world["uc"], "2024-02", out)


def test_a_nullable_feature_may_be_missing_in_every_row(world, tmp_path) -> None:
    out = _corrupt_copy(world, tmp_path, lambda s: s.assign(income=None, late_payments_12m=None, housing=None))
    validated = validate_month(world["uc"], "2024-02", out)
    assert validated.snapshot["income"].isna().all()


# --- the feature store ------------------------------------------------------------------------------------------


def test_offline_partitions_keep_the_declared_types_with_nulls(world) -> None:
    from fairway.features.store import offline_partition

    schemas = [pq.read_schema(offline_partition(world["uc"], "customer_financials", m)) for m in MONTHS]
    for schema in schemas:
        assert str(schema.field("late_payments_12m").type) == "int64"  # Int64 and float64-with-NaN alike
        assert str(schema.field("income").type) == "double" and str(schema.field("housing").type) == "string"
    assert all(s.remove_metadata() == schemas[0].remove_metadata() for s in schemas)
    table = pq.read_table(offline_partition(world["uc"], "customer_financials", "2024-02"))
    assert table.column("late_payments_12m").null_count == (len(table) + 2) // 4


def test_historical_retrieval_returns_the_nulls_and_drops_no_row(world) -> None:
    from fairway.features.retrieval import historical_features, rows_found
    from fairway.features.store import get_store

    uc = world["uc"]
    raw = pd.concat([_raw(world, m) for m in MONTHS], ignore_index=True)
    rows = pd.concat([raw[["customer_id", "snapshot_ts"]], pd.DataFrame({
        "customer_id": ["X0000001"], "snapshot_ts": [pd.Timestamp("2024-02-10", tz="UTC")]})], ignore_index=True)  # fmt: skip
    frame = historical_features(get_store(uc), uc, rows, "credit_model_v1")
    assert len(frame) == len(rows)
    assert list(frame["customer_id"]) == list(rows["customer_id"])
    known = frame.iloc[:-1]
    for column in NULLABLE:
        assert (known[column].isna().to_numpy() == raw[column].isna().to_numpy()).all(), column
    assert known["late_payments_12m"].dtype == "float64"  # an int with missing values: float64, NaN
    assert all(v != v for v in known.loc[raw["housing"].isna(), "housing"])  # a category's missing value: NaN
    present = raw["income"].notna()
    assert np.allclose(known.loc[present, "income"], raw.loc[present, "income"])
    assert (known.drop(columns=list(NULLABLE)).iloc[:, 2:].notna().all()).all()
    found = rows_found(uc, rows, uc.model_inputs)
    assert found.iloc[:-1].all() and not found.iloc[-1]  # a missing value is found; an unknown customer is not
    # told from the retrieved values, looking up only rows without any value of a view: the same answer, also
    # for a known customer whose every retrieved value is blanked (looked up: still found)
    blanked = frame.copy()
    blanked.loc[0, uc.model_inputs] = np.nan
    assert rows_found(uc, rows, uc.model_inputs, frame).tolist() == found.tolist()
    assert rows_found(uc, rows, uc.model_inputs, blanked).tolist() == found.tolist()
    assert frame.iloc[-1][uc.model_inputs].isna().all()


def test_one_time_for_every_row_reads_the_latest_rows_in_the_window_as_the_join_does(world, monkeypatch) -> None:
    """Entity rows that share one time (a batch month as of its end) are served from each view's latest rows in
    [t - ttl, t] (the query feast materialize runs), not the point-in-time join: the same frame, value for value,
    with missing values, customers known only from earlier months, an unknown id, and a snapshot exactly at the
    TTL's edge (kept) next to one a microsecond past it (dropped)."""
    from datetime import timedelta

    from fairway.features import retrieval
    from fairway.features.store import get_store

    uc, store = world["uc"], get_store(world["uc"])
    service = uc.service("model_input").name
    ttl = timedelta(days=uc.view(uc.feature(uc.model_inputs[0]).view).ttl_days)
    january = _raw(world, "2024-01")
    later = set(pd.concat([_raw(world, m)["customer_id"] for m in MONTHS[1:]]))
    only_january = january[~january["customer_id"].isin(later)]
    assert not only_january.empty, "the world needs a customer with a January snapshot only"
    person = only_january.iloc[0]
    edge = pd.Timestamp(person["snapshot_ts"]) + ttl  # that person's only snapshot is exactly ttl old
    ids = pd.concat([_raw(world, m)["customer_id"] for m in MONTHS]).drop_duplicates()
    served: list[object] = []  # what the window path returned (None: it handed the rows to the join)
    original = retrieval._latest_features
    monkeypatch.setattr(retrieval, "_latest_features", lambda *a: served.append(original(*a)) or served[-1])
    seen = []
    for at in (pd.Timestamp("2024-03-31 23:59:59.999999", tz="UTC"), edge, edge + pd.Timedelta(microseconds=1)):
        rows = pd.DataFrame({"customer_id": [*ids, "X0000001"], "snapshot_ts": at})
        monkeypatch.setattr(retrieval, "LATEST_MIN_ROWS", 10**12)
        joined = retrieval.historical_features(store, uc, rows, service)
        monkeypatch.setattr(retrieval, "LATEST_MIN_ROWS", 0)
        served.clear()
        latest = retrieval.historical_features(store, uc, rows, service)
        assert len(served) == 1 and served[0] is latest  # the window path answered, not the join
        pd.testing.assert_frame_equal(latest, joined, check_exact=True)
        assert latest.iloc[-1][uc.model_inputs].isna().all()
        seen.append(bool(latest.loc[latest["customer_id"] == person["customer_id"], uc.model_inputs].notna().any(axis=None)))
    assert seen[1:] == [True, False]  # at the edge kept, a microsecond past it dropped
    # rows with different times, or an id twice, take the point-in-time join
    assert original(store, uc, pd.DataFrame({"customer_id": ["a", "a"], "snapshot_ts": edge}),
                                      service) is None  # fmt: skip


def test_the_online_store_returns_none_for_a_null(world) -> None:
    from fairway.features.store import get_store

    uc = world["uc"]
    march = _raw(world, "2024-03").iloc[:8]
    store = get_store(uc)
    online = store.get_online_features(
        features=store.get_feature_service("credit_model_v1"),
        entity_rows=[{"customer_id": c} for c in march["customer_id"]],
    ).to_dict()
    for column in NULLABLE:
        assert [v is None for v in online[column]] == list(march[column].isna()), column


# --- batch scoring ----------------------------------------------------------------------------------------------


def test_a_month_with_missing_values_is_scored_with_reasons_and_stable_fingerprints(world, monkeypatch) -> None:
    from fairway import training, verification
    from fairway.inference import month_inputs, score_month
    from fairway.records import input_fingerprint, prediction_partition, pseudonymise

    uc, model = world["uc"], world["model"]
    inputs = month_inputs(uc, "2024-03")
    march = _raw(world, "2024-03").set_index("customer_id").loc[inputs["customer_id"]]
    assert len(inputs) == len(march) and inputs["income"].isna().sum() == march["income"].isna().sum() > 0
    monkeypatch.setattr(verification, "still_allowed", lambda usecase, pinned: None)
    monkeypatch.setattr(verification, "load_scoring_model", lambda usecase, pinned: model)
    monkeypatch.setattr(training, "load_reference", lambda run_id: world["reference"])
    pinned = {"model": uc.model_name, "version": "1", "run_id": "r1"}
    summary = score_month(uc, "2024-03", pinned, "test-run")
    assert summary["rows"] == len(inputs)
    records = pd.read_parquet(prediction_partition(uc, "2024-03")).set_index("subject")
    subjects = pseudonymise(inputs["customer_id"]).to_numpy()
    expected = model.predict_proba(missing_as_nan(march[uc.model_inputs].reset_index(drop=True)))[:, 1]
    assert np.allclose(records.loc[subjects, "score"].to_numpy(), expected, atol=1e-12)
    # the fingerprint of the inputs as a person gives them: None for a missing value, ints for an int input
    for customer, subject in zip(inputs["customer_id"], subjects, strict=True):
        given = [None if pd.isna(v) else v for v in march.loc[customer, uc.model_inputs]]
        given = [int(v) if c == "late_payments_12m" and v is not None else v for c, v in zip(uc.model_inputs, given, strict=True)]  # fmt: skip
        assert records.at[subject, "input_fingerprint"] == input_fingerprint(given)
    for customer, subject in zip(inputs["customer_id"], subjects, strict=True):
        for reason in json.loads(records.at[subject, "reasons"]):
            value = march.at[customer, reason["feature"]]
            assert reason["value"] == (None if pd.isna(value) else value)  # a missing value is reported as null
            assert type(reason["value"]) is not float or reason["feature"] != "late_payments_12m"


def test_a_missing_non_nullable_input_refuses_the_month(world) -> None:
    """A partition written past validation (a nullable rule relaxed, then restored): nothing is scored."""
    from fairway.features.store import offline_partition
    from fairway.inference import ScoringError, month_inputs

    uc = world["uc"]
    path = offline_partition(uc, "customer_financials", "2024-03")
    kept = path.read_bytes()
    frame = pd.read_parquet(path)
    write_parquet_atomic(to_arrow(frame.assign(debt_ratio=frame["debt_ratio"].where(frame.index != 2))), path)
    try:
        with pytest.raises(ScoringError, match=r"1 customers lack model inputs .*missing non-nullable inputs \['debt_ratio'\]"):  # fmt: skip
            month_inputs(uc, "2024-03")
    finally:
        path.write_bytes(kept)


# --- the online scorer and the service's request model ----------------------------------------------------------


@pytest.fixture(scope="module")
def scorer(world):
    from fairway.packaging import input_schema
    from fairway.serving import OnlineScorer

    metadata = {"inputs": input_schema(world["uc"]), "reference": world["reference"], "decision_threshold": 0.5,
                "mlflow_model_name": "credit-nulls", "mlflow_version": "1"}  # fmt: skip
    return OnlineScorer(NAME, world["model"], metadata)


def test_the_input_schema_marks_nullable_inputs(world) -> None:
    from fairway.packaging import input_schema

    schema = {s["name"]: s for s in input_schema(world["uc"])}
    assert {n for n, s in schema.items() if s.get("nullable")} == set(NULLABLE)
    assert "nullable" not in schema["debt_ratio"]  # metadata holds no None, nor a default


def test_a_customer_with_null_online_values_is_scored_as_in_batch(world, scorer) -> None:
    from fairway.features.retrieval import historical_features
    from fairway.features.store import get_store
    from fairway.inference import as_given
    from fairway.records import input_fingerprints

    uc = world["uc"]
    march = _raw(world, "2024-03")
    holes = march[march["income"].isna() & march["late_payments_12m"].isna()].head(3)
    holes = pd.concat([holes, march[march["housing"].isna()].head(2)])
    batch = historical_features(get_store(uc), uc, holes[["customer_id", "snapshot_ts"]], "credit_model_v1")
    expected = world["model"].predict_proba(batch[uc.model_inputs])[:, 1]
    fingerprints = input_fingerprints(as_given(uc, batch[uc.model_inputs]))
    rows = scorer.log.read
    for i, customer in enumerate(holes["customer_id"]):
        values, _ = scorer.online_features(customer)
        assert [c for c in NULLABLE if values[c] is None] == [c for c in NULLABLE if pd.isna(holes.iloc[i][c])]
        answer = scorer.predict_customer(customer, request_id=f"null-{i}")
        assert answer["score"] == pytest.approx(expected[i], abs=1e-12)
        record = rows().set_index("request_id").loc[f"null-{i}"]
        assert record["input_fingerprint"] == fingerprints.iloc[i]  # online and batch records agree
        json.dumps(answer["reasons"], allow_nan=False)  # null, never NaN


def test_the_direct_online_read_gives_what_get_online_features_gives(world, scorer) -> None:
    """The service reads the online store directly (views resolved once); for every March customer (nulls
    included), customers of earlier months only and an unknown id it must equal Feast's own answer."""
    from fairway.features.store import get_store

    uc = world["uc"]
    assert scorer.reads is not None  # the direct path is the one in use
    store = get_store(uc)
    service = store.get_feature_service("credit_model_v1")
    ids = list(_raw(world, "2024-03")["customer_id"])
    ids += [c for c in _raw(world, "2024-01")["customer_id"] if c not in set(ids)][:20] + ["X0000001"]
    keys = ["customer_id"] + [k for c in uc.model_inputs for k in (c, f"{c}__ts")]
    for customer in ids:
        expected = store.get_online_features(features=service, entity_rows=[{"customer_id": customer}])
        expected_dict = expected.to_dict(include_event_timestamps=True)
        got = scorer._online_response(customer)
        assert {k: got[k] for k in keys} == {k: expected_dict[k] for k in keys}, customer
        assert [type(got[k][0]) for k in keys] == [type(expected_dict[k][0]) for k in keys], customer  # 1 vs 1.0


def test_a_null_in_a_non_nullable_online_input_is_refused(world, scorer) -> None:
    from fairway.packaging import input_schema
    from fairway.serving import OnlineScorer, UnknownCustomer

    strict = [{k: v for k, v in s.items() if k != "nullable"} if s["name"] == "income" else s
              for s in input_schema(world["uc"])]  # fmt: skip
    metadata = {"inputs": strict, "reference": world["reference"], "decision_threshold": 0.5,
                "mlflow_model_name": "credit-nulls", "mlflow_version": "1"}  # fmt: skip
    refusing = OnlineScorer(NAME, world["model"], metadata)
    march = _raw(world, "2024-03")
    customer = march.loc[march["income"].isna(), "customer_id"].iloc[0]
    with pytest.raises(UnknownCustomer, match=r"lacks online features \['income'\]"):
        refusing.predict_customer(customer)
    with pytest.raises(UnknownCustomer, match="has no features"):
        scorer.predict_customer("X0000001")


def test_explicit_inputs_take_null_for_nullable_inputs_only(world, scorer) -> None:
    from fairway.packaging import input_schema
    from fairway.serving import applicant_model

    uc = world["uc"]
    applicant = applicant_model(input_schema(uc))
    given = {"income": None, "debt_ratio": 0.35, "credit_amount": 8000.0, "loan_duration_months": 48,
             "late_payments_12m": None, "savings_balance": 1200.0, "tenure_months": 30,
             "employment_type": "permanent", "housing": None, "residential_area": "east"}  # fmt: skip
    values = applicant.model_validate_json(json.dumps(given)).model_dump()
    assert values == given
    for name in ("debt_ratio", "tenure_months", "employment_type"):
        with pytest.raises(ValidationError, match=name):
            applicant.model_validate_json(json.dumps({**given, name: None}))
    with pytest.raises(ValidationError, match=r"income\n  Field required"):  # null must be said, not implied
        applicant.model_validate_json(json.dumps({k: v for k, v in given.items() if k != "income"}))
    with pytest.raises(ValidationError, match="housing"):
        applicant.model_validate_json(json.dumps({**given, "housing": "boat"}))
    with pytest.raises(ValidationError, match="income"):
        applicant.model_validate_json(json.dumps({**given, "income": -3.0}))
    schema = applicant.model_json_schema()["properties"]
    assert {"type": "null"} in schema["income"]["anyOf"] and "anyOf" not in schema["debt_ratio"]
    answer = scorer.predict_features(values)
    frame = missing_as_nan(pd.DataFrame([values])[uc.model_inputs], ["income", "late_payments_12m"])
    assert answer["score"] == pytest.approx(world["model"].predict_proba(frame)[0, 1], abs=1e-12)
    assert scorer.fast is None  # an imputing pipeline is not the plain one: no compiled form
