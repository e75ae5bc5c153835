"""Batch records stay byte-identical through the speed-ups: the vectorised pseudonyms, input fingerprints and
reason-code JSON are compared, as exact strings, with straightforward row-by-row reference implementations
(the logic before the speed-ups) on awkward data."""

from __future__ import annotations

import hashlib
import hmac
import json

import numpy as np
import pandas as pd
import pytest

from fairway.explanations import ReasonCodes
from fairway.records import input_fingerprints, pseudonymise

KEY = "an-identity-test-key"


def oracle_pseudonyms(ids: pd.Series) -> list[str]:
    return [hmac.new(KEY.encode(), str(v).encode(), hashlib.sha256).hexdigest()[:32] for v in ids.astype(str)]


def oracle_fingerprints(inputs: pd.DataFrame) -> list[str]:
    rows = inputs.astype(object).to_numpy().tolist()
    return [hashlib.sha256("\x1f".join(str(v) for v in row).encode()).hexdigest()[:32] for row in rows]


def awkward() -> pd.DataFrame:
    return pd.DataFrame({
        "x": [0.1 + 0.2, 1e-7, -0.0, 1e16, np.nan, 2.5, -3.0, 123456789.125],
        "n": pd.array([2**53 + 1, -1, 0, None, 7, 12, 3, 2**62], dtype="Int64"),
        "f": [1.0, np.nan, 3.0, 4.0, 5.0, np.nan, 0.0, 9.0],  # an int input with a missing value, as float64
        "c": ['say "hi"', "naïve", "a\\b", None, "tab\there", "日本", "\x1f", "plain"],
        "b": [True, False, True, False, True, False, True, True],
    })  # fmt: skip


def test_pseudonyms_equal_the_row_by_row_hmac(monkeypatch) -> None:
    monkeypatch.setenv("FAIRWAY_PSEUDONYM_KEY", KEY)
    for ids in (pd.Series([7, 2**62, -1, 0], index=[3, 1, 2, 9]), pd.Series(["c1", "naïve", "日本", ""]),
                pd.Series(np.arange(5000))):  # fmt: skip
        result = pseudonymise(ids)
        assert result.tolist() == oracle_pseudonyms(ids) and list(result.index) == list(ids.index)


def test_pseudonyms_of_many_ids_equal_the_row_by_row_hmac(monkeypatch) -> None:
    """The vectorised HMAC (DuckDB) against hmac.new, with a key of every length class of RFC 2104."""
    ids = pd.Series([f"c{i}" for i in range(3000)] + ["naïve", "日本", "", " ", "a\tb", "\x1f", "x" * 500, "0"] * 10)
    for key in ("short", "k" * 64, "a-key-longer-than-a-sha256-block-" * 4):
        monkeypatch.setenv("FAIRWAY_PSEUDONYM_KEY", key)
        expected = [hmac.new(key.encode(), v.encode(), hashlib.sha256).hexdigest()[:32] for v in ids]
        assert pseudonymise(ids).tolist() == expected
    with_nul = pd.concat([ids, pd.Series(["a\x00b"])], ignore_index=True)  # the row-by-row path
    assert pseudonymise(with_nul).tolist()[-1] == hmac.new(key.encode(), b"a\x00b", hashlib.sha256).hexdigest()[:32]


def test_fingerprints_of_many_rows_equal_the_row_by_row_sha256() -> None:
    """The column-wise texts (polars' float text where it is Python's repr, Arrow's ints) on floats of every
    magnitude, ints past 2**53, missing values and objects of mixed types."""
    from fairway.inference import as_given

    rng = np.random.default_rng(5)
    n = 4000
    with np.errstate(over="ignore"):  # some are inf
        floats = rng.normal(size=n) * 10.0 ** rng.integers(-330, 310, n)
    floats[:40] = [0.0, -0.0, 1e-4, np.nextafter(1e-4, 0), 1e16, np.nextafter(1e16, 0), 5e-324, np.inf, -np.inf,
                   np.nan, 0.1 + 0.2, 100.0, 1e15, 123456789.125, 2.5, -1e-5, 1e22, 9007199254740993.0,
                   *(rng.random(22) * 1e3)]  # fmt: skip
    frame = pd.DataFrame({
        "x": floats, "r": np.round(rng.normal(size=n) * 1000, 2), "i": rng.integers(-(2**62), 2**62, n),
        "n": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 9, n)), dtype="Int64"),
        "f": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 9, n).astype(float)),
        "c": np.where(rng.random(n) < 0.1, None, rng.choice(["a", "naïve", "日本", "\x1f", ""], n)),
        "b": rng.random(n) < 0.5, "m": pd.Series([1, 1.0, True, "1", None, 2**70, -0.0, np.nan] * (n // 8)),
    })  # fmt: skip

    class UC:
        @staticmethod
        def feature(name: str):
            return type("F", (), {"dtype": "int" if name in ("n", "f", "i") else "float"})

    given = as_given(UC, frame)  # type: ignore[arg-type]
    for inputs in (frame, given, given.iloc[::-1], frame[["x"]]):
        assert input_fingerprints(inputs).tolist() == oracle_fingerprints(inputs)
        assert list(input_fingerprints(inputs).index) == list(inputs.index)
    # what batch scoring writes: the typed frame fingerprinted as as_given gives it, without the frame of objects
    typed = frame.drop(columns=["m"])
    for inputs in (typed, typed.iloc[::-1], typed.iloc[:500]):
        expected = oracle_fingerprints(as_given(UC, inputs))  # type: ignore[arg-type]
        assert input_fingerprints(inputs, integers=["n", "f", "i"]).tolist() == expected
    fractional = typed.assign(f=typed["f"] + 0.5)  # not ints after all: as_given's own conversion refuses them
    with pytest.raises(TypeError):
        input_fingerprints(fractional, integers=["n", "f", "i"])


def test_float_texts_are_pythons_repr_across_the_positional_range() -> None:
    from fairway.data import float_reprs

    rng = np.random.default_rng(11)
    n = 100_000
    values = np.concatenate([
        rng.random(n) * 10.0 ** rng.integers(-4, 16, n), -rng.random(n) * 10.0 ** rng.integers(-4, 16, n),
        rng.integers(0, 2**53, n).astype(float), np.round(rng.normal(size=n) * 1e5, 2), rng.integers(-10**6, 10**6, n) / 8,
        np.nextafter(1e16, 0) - rng.integers(0, 1000, 1000) * 2.0, 1e-4 * (1 + rng.random(1000) * 1e-12),
    ])  # fmt: skip
    assert float_reprs(values).tolist() == [repr(v) for v in values.tolist()]


def test_fingerprints_equal_the_row_by_row_sha256() -> None:
    from fairway.inference import as_given

    class UC:  # the part of a use case as_given reads: which inputs are ints
        @staticmethod
        def feature(name: str):
            return type("F", (), {"dtype": "int" if name in ("n", "f") else "float"})

    inputs = awkward()
    given = as_given(UC, inputs)  # type: ignore[arg-type]
    assert given["f"].tolist()[:2] == [1, None] and given["n"].tolist()[3] is None
    for frame in (given, inputs, inputs.iloc[[5, 0, 3]]):
        assert input_fingerprints(frame).tolist() == oracle_fingerprints(frame)


def oracle_reasons_json(codes: ReasonCodes, inputs: pd.DataFrame) -> list[str]:
    """One row at a time: score the row and each swap, the top positive effects as json.dumps writes them."""
    out = []
    for _, row in inputs.iterrows():
        swaps = [row.to_frame().T.astype(inputs.dtypes.to_dict())]
        for c in codes.columns:
            swapped = swaps[0].copy()
            swapped[c] = pd.Series([codes.reference[c]], index=swapped.index).astype(inputs[c].dtype)
            swaps.append(swapped)
        scores = [float(codes.score_rows(s)[0]) for s in swaps]
        effects = [scores[0] - s for s in scores[1:]]
        order = sorted(range(len(codes.columns)), key=lambda i: (-effects[i], codes.columns[i]))
        reasons = []
        for i in order[: codes.top]:
            if effects[i] <= 1e-6:
                continue
            c, v = codes.columns[i], row[codes.columns[i]]
            if pd.isna(v):
                v = None
            elif isinstance(v, np.generic):
                v = v.item()
            if isinstance(codes.reference[c], int) and isinstance(v, float) and v.is_integer():
                v = int(v)
            reasons.append({"feature": c, "value": v, "reference": codes.reference[c], "effect": round(effects[i], 6)})
        out.append(json.dumps(reasons, separators=(",", ":")))
    return out


def test_reason_json_equals_the_row_by_row_reasons() -> None:
    inputs = awkward()
    reference = {"x": 0.0, "n": 0, "f": 1, "c": "plain", "b": False}

    def score(rows: pd.DataFrame) -> np.ndarray:  # each input moves the score by its own amount, row by row
        x = rows["x"].to_numpy(dtype=float)
        moved = (np.nan_to_num(np.abs(x), nan=0.5) % 7) * 0.1
        moved = moved + (rows["n"].astype("Float64").fillna(-2).to_numpy(dtype=float) % 5) * 0.07
        moved = moved + np.nan_to_num(rows["f"].to_numpy(dtype=float), nan=4.0) * 0.03
        moved = (
            moved + (rows["c"].fillna("?") != "plain").to_numpy(dtype=float) * 0.2 + rows["b"].to_numpy(float) * 0.05
        )
        return 1 / (1 + np.exp(-moved))

    for top in (3, 5):
        codes = ReasonCodes(["x", "n", "f", "c", "b"], reference, score, top=top)
        expected = oracle_reasons_json(codes, inputs)
        assert codes.frame_reasons_json(inputs) == expected
        assert codes.frame_reasons_json(inputs, score(inputs)) == expected
    assert any('"value":null' in text for text in expected) and any("日本" in t or "\\u65e5" in t for t in expected)


def test_reason_json_of_a_fitted_pipeline_equals_one_scoring_pass_per_input() -> None:
    """With a fitted pipeline (floating point as in production), the records' reason strings are those of
    scoring each input's swapped frame on its own (the implementation before any speed-up)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 3000
    inputs = pd.DataFrame({
        "x": np.where(rng.random(n) < 0.1, np.nan, rng.normal(0, 3, n)), "f": rng.integers(0, 9, n).astype(float),
        "c": rng.choice(["a", "naïve", 'q"', "日本"], n),
    })  # fmt: skip
    y = (np.nan_to_num(inputs["x"]) + inputs["f"] + rng.normal(0, 2, n) > 4).astype(int)
    numbers = make_pipeline(SimpleImputer(), StandardScaler())
    pre = ColumnTransformer([("num", numbers, ["x", "f"]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["c"])],
                            sparse_threshold=0)  # dense, as fairway.training.preprocessor
    model = make_pipeline(pre, LogisticRegression()).fit(inputs, y)
    score = lambda rows: model.predict_proba(rows)[:, 1]  # noqa: E731
    reference = {"x": 0.5, "f": 4, "c": "a"}

    def before(codes: ReasonCodes) -> list[str]:
        base = score(inputs)
        effects = np.empty((n, 3))
        for j, column in enumerate(codes.columns):
            swapped = inputs.copy()
            swapped[column] = pd.Series([reference[column]] * n).astype(inputs[column].dtype)
            effects[:, j] = base - score(swapped)
        return [
            json.dumps([{"feature": c, "value": None if pd.isna(v) else (int(v) if c == "f" else v),
                         "reference": reference[c], "effect": round(float(e), 6)}
                        for c, v, e in sorted(zip(codes.columns, row, effects[i], strict=True),
                                              key=lambda t: (-t[2], t[0]))[:3] if e > 1e-6],
                       separators=(",", ":"))
            for i, row in enumerate(inputs[codes.columns].to_numpy(dtype=object).tolist())
        ]  # fmt: skip

    codes = ReasonCodes(["x", "f", "c"], reference, score)
    expected = before(codes)
    assert codes.frame_reasons_json(inputs) == expected
    assert sum(text != "[]" for text in expected) > n // 2

    # one transform of the frame, the final estimator per input (PreparedSwaps): the same strings and scores,
    # for the logistic model and a non-linear one over the same preprocessing
    from sklearn.ensemble import HistGradientBoostingClassifier

    boosted = make_pipeline(pre, HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(inputs, y)
    for fitted in (model, boosted):
        score = lambda rows, fitted=fitted: fitted.predict_proba(rows)[:, 1]  # noqa: E731
        plain = ReasonCodes(["x", "f", "c"], reference, score)
        prepared = ReasonCodes(["x", "f", "c"], reference, score, model=fitted)
        assert prepared.prepared is not None and plain.prepared is None
        scores, reasons = prepared.frame_scores_reasons_json(inputs)
        texts = reasons.to_pylist()
        assert texts == before(plain) if fitted is model else texts == plain.frame_reasons_json(inputs)
        assert np.array_equal(scores, score(inputs)) and prepared.prepared is not None  # used, not given up


def test_prepared_swaps_are_given_up_when_they_disagree_with_the_pipeline(monkeypatch) -> None:
    """A model whose arithmetic the one-transform swaps do not reproduce exactly is scored frame by frame."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from fairway.explanations import PreparedSwaps

    rng = np.random.default_rng(1)
    inputs = pd.DataFrame({"x": rng.normal(0, 1, 1000), "c": rng.choice(["a", "b", "c"], 1000)})
    y = (inputs["x"] + (inputs["c"] == "a") + rng.normal(0, 1, 1000) > 0.5).astype(int)
    pre = ColumnTransformer([("num", StandardScaler(), ["x"]), ("cat", OneHotEncoder(sparse_output=False), ["c"])],
                            sparse_threshold=0)  # fmt: skip
    model = make_pipeline(pre, LogisticRegression()).fit(inputs, y)
    score = lambda rows: model.predict_proba(rows)[:, 1]  # noqa: E731
    codes = ReasonCodes(["x", "c"], {"x": 0.0, "c": "b"}, score, model=model)
    expected = ReasonCodes(["x", "c"], {"x": 0.0, "c": "b"}, score).frame_reasons_json(inputs)
    monkeypatch.setattr(PreparedSwaps, "_score", lambda self, prepared: np.nextafter(score_of(prepared), 2))
    score_of = lambda prepared: model.steps[1][1].predict_proba(prepared)[:, 1]  # noqa: E731
    assert codes.frame_reasons_json(inputs) == expected and codes.prepared is None


def test_prepared_swaps_only_for_transformers_with_one_input_per_output() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from fairway.explanations import PreparedSwaps

    inputs = pd.DataFrame({"x": np.arange(50.0), "z": np.arange(50.0) % 7})
    mixed = make_pipeline(ColumnTransformer([("pca", PCA(2), ["x", "z"])]), LogisticRegression())
    mixed.fit(inputs, np.arange(50) % 2)
    assert PreparedSwaps.of(mixed, ["x", "z"]) is None
    assert PreparedSwaps.of(LogisticRegression().fit(inputs, np.arange(50) % 2), ["x", "z"]) is None


def test_effects_are_written_as_the_repr_of_round_to_six_places() -> None:
    """The records' effects are formatted once per distinct rounded value, not by round() per reason: the same
    text, also on a half of the sixth place, a rounding error either side of it, tiny and large effects."""
    from fairway.explanations import _json_effects

    rng = np.random.default_rng(3)
    halves = (np.arange(1, 3001) + 0.5) / 1e6
    effects = np.concatenate([
        rng.random(20000), rng.random(3000) * 1e-4, halves, np.nextafter(halves, 0), np.nextafter(halves, 1),
        [1.0, 0.9999995, 1e-6, 1.5e-6, 2.5e-6, 999.9999995, 1234.5678915, 1e17, -0.5, np.nan],
    ])  # fmt: skip
    kept = effects > 1e-6
    distinct, codes = _json_effects(effects.reshape(-1, 2), kept.reshape(-1, 2))
    texts = np.asarray(distinct.take(codes.ravel()).to_pylist(), dtype=object)
    assert texts[kept].tolist() == [repr(round(e, 6)) for e in effects[kept].tolist()]
    assert len(distinct) < kept.sum() and kept.sum() > 30000  # each distinct rounded effect formatted once


def test_records_are_ordered_by_subject_as_the_strings_sort() -> None:
    """Pseudonyms are sorted as numpy byte strings read from Arrow's buffer; the order and the duplicate check are
    those of the strings, also for a slice of a longer array, non-ASCII text of one byte length and a NUL at a
    subject's end (which numpy's byte strings would drop)."""
    import pyarrow as pa

    from fairway.records import _subject_order as order_of

    def _subject_order(subjects: np.ndarray, cut: int = 0) -> tuple[np.ndarray, bool]:
        padded = pa.array(["z" * 7] * cut + subjects.tolist(), pa.string())
        return order_of(padded.slice(cut) if cut else padded)

    rng = np.random.default_rng(2)
    hexes = np.array([f"{v:032x}" for v in rng.integers(0, 2**63, 5000).tolist()], dtype=object)
    hexes[:100] = [f"{a:016x}{b:016x}" for a, b in zip(rng.integers(0, 3, 100), rng.integers(0, 2**63, 100), strict=True)]
    for subjects in (hexes, np.array(["b", "a", "日本", "A", "a" * 40], dtype=object),
                     np.array(["F" * 32, "0" * 32, "g" * 32], dtype=object),
                     np.array(["a\x00", "a", "b\x00c", "b"], dtype=object),
                     np.array(["a\x00", "ab", "a\x01"], dtype=object), np.array(["éa", "aé", "ée"], dtype=object)):  # fmt: skip
        for cut in (0, 3):
            order, twice = _subject_order(subjects, cut)
            assert subjects[order].tolist() == sorted(subjects.tolist()) and not twice
    assert _subject_order(np.concatenate([hexes, hexes[7:8]]))[1]
    assert _subject_order(np.array(["x", "y", "x"], dtype=object))[1]


def test_a_prediction_table_is_the_frame_pandas_would_convert() -> None:
    """Batch records built from Arrow columns and constants have the schema, pandas metadata and parquet bytes of
    the frame of the same values (a microsecond Timestamp keeps its unit), also for a month with no rows."""
    import io

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from fairway.data import to_arrow
    from fairway.records import PREDICTION_COLUMNS, prediction_table

    def parquet(table: pa.Table) -> bytes:
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue()

    start, end = pd.Timestamp("2024-03-01", tz="UTC"), pd.Timestamp("2024-04-01", tz="UTC")
    as_of = pd.Series(pd.to_datetime(["2024-03-31 23:59:59.999999"], utc=True).astype("datetime64[us, UTC]")).iloc[0]
    constants = {"threshold": 0.5, "model_name": "m", "model_version": "3", "feature_service": "s",
                 "interval_start": start, "interval_end": end, "features_as_of": as_of, "run_id": "r"}  # fmt: skip
    for rows in (5, 0):
        scores = np.linspace(0, 1, rows)
        texts = pa.array([f"{i:032x}" for i in range(rows)], pa.string())
        columns = {"subject": texts, "score": scores, "decision": pc.if_else(pa.array(scores > 0.5), "approve", "decline"),
                   "input_fingerprint": texts, "reasons": pa.array(['[{"a":1}]'] * rows, pa.string())}  # fmt: skip
        plain = {n: c.to_numpy(zero_copy_only=False) if isinstance(c, pa.Array) else c for n, c in columns.items()}
        frame = pd.DataFrame({n: constants[n] if n in constants else plain[n] for n in PREDICTION_COLUMNS})
        table = prediction_table(constants, columns, rows)
        assert table.equals(to_arrow(frame), check_metadata=True) and table.num_rows == rows
        assert parquet(table) == parquet(to_arrow(frame))
