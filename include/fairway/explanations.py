"""Explanations: what a model version relies on overall, and why one decision came out as it did.

- **Global** (per model version, AI Act Art. 13(3)(b)): permutation importance on the holdout month, the drop
  of the holdout AUC when one model input's values are shuffled across rows (mean and standard deviation over
  `repeats` shuffles, seeded). An input the model does not use scores about 0. Logged with the candidate's run
  (`evaluation/permutation_importance.csv` and `.png`) and shown in the version's documentation.
- **Per decision** (reason codes, GDPR Art. 22(3) / AI Act Art. 86): the model inputs that raise this person's
  score the most compared with a *reference applicant* (median of each number, most frequent category, taken
  from the version's training rows). The effect of input i is `score(x) - score(x with x_i set to the
  reference)`; the reasons are the (up to) `TOP_REASONS` inputs with a positive effect, largest first, each with
  the person's value, the reference value and the effect in score points. Deterministic: the same inputs give
  the same reasons. It costs one score per model input: the online service scores the swaps with its compiled
  linear form when the model has one, else with one `predict_proba` over a small frame; batch scoring
  transforms the month's frame once and runs only the final estimator per input (PreparedSwaps).
- **Missing values** (inputs declared `nullable`): the reference takes the median / most frequent value of the
  values present; a missing value is scored as missing (the model's pipeline imputes it) and reported as `null`
  in a reason: "this input is missing" can itself be a reason, when the model scores it above the reference.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from fairway.data import float_repr_array, is_missing, missing_as_nan

log = logging.getLogger(__name__)

TOP_REASONS = 3
MIN_EFFECT = 1e-6  # smaller effects are rounding noise, not reasons

Reason = dict[str, Any]


def _plain(value: Any) -> Any:
    """A JSON- and metadata-friendly scalar (numpy scalars become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


def reference_point(frame: pd.DataFrame, columns: Sequence[str], integers: Collection[str] = ()) -> dict[str, Any]:
    """The reference applicant: the median of each numeric input (rounded for integer ones: of an integer dtype,
    or named in `integers`, e.g. an int input that retrieval gave as float64 because a value is missing), the most
    frequent value of each other input (ties: the first in sorted order). Missing values are left out: the
    reference of a nullable input is taken from the values present."""
    reference: dict[str, Any] = {}
    for column in columns:
        series = frame[column].dropna()
        if series.empty:
            raise ValueError(f"no values of '{column}' to take a reference from")
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            counts = series.astype(str).value_counts()
            top = counts[counts == counts.max()].index
            reference[column] = sorted(top)[0]
        elif pd.api.types.is_integer_dtype(series) or column in integers:
            reference[column] = int(round(float(series.median())))
        else:
            reference[column] = float(series.median())
    return reference


def permutation_importance(
    score: Callable[[pd.DataFrame], np.ndarray], inputs: pd.DataFrame, target: np.ndarray, repeats: int = 5,
    seed: int = 0,
) -> pd.DataFrame:  # fmt: skip
    """Drop of the AUC when each column is shuffled (mean, std over `repeats`); sorted, most important first."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(target)) < 2:
        raise ValueError("permutation importance needs both outcomes in the holdout")
    rng = np.random.default_rng(seed)
    baseline = float(roc_auc_score(target, score(inputs)))
    rows = []
    for column in inputs.columns:
        drops = []
        for _ in range(repeats):
            shuffled = inputs.copy()
            shuffled[column] = inputs[column].array.take(rng.permutation(len(inputs)))  # keeps the dtype
            drops.append(baseline - float(roc_auc_score(target, score(shuffled))))
        rows.append(
            {"feature": column, "importance_mean": float(np.mean(drops)), "importance_std": float(np.std(drops))}
        )
    table = pd.DataFrame(rows).sort_values(["importance_mean", "feature"], ascending=[False, True])
    return table.assign(baseline_auc=baseline).reset_index(drop=True)


def plot_importance(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Horizontal bars of the AUC drop per input, with the spread over the shuffles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = table.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(table) + 1.4))
    ax.barh(ordered["feature"], ordered["importance_mean"], xerr=ordered["importance_std"], color="#486581")
    ax.axvline(0, color="#9fb3c8", linewidth=0.8)
    ax.set_xlabel("drop of holdout AUC when the input is shuffled")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _value(value: Any, reference: Any) -> Any:
    """A value as a reason reports it: None when missing, in the type of the reference (an int input's values are
    ints, also from a float64 column), else as a plain scalar."""
    if is_missing(value):
        return None
    value = _plain(value)
    if _is_int(reference) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _reason(column: str, value: Any, reference: dict[str, Any], effect: float) -> Reason:
    return {
        "feature": column,
        "value": _value(value, reference[column]),
        "reference": reference[column],
        "effect": round(float(effect), 6),
    }


def _top(effects: np.ndarray, columns: Sequence[str], values: Sequence[Any], reference: dict[str, Any],
         top: int) -> list[Reason]:  # fmt: skip
    order = sorted(range(len(columns)), key=lambda i: (-effects[i], columns[i]))
    return [_reason(columns[i], values[i], reference, effects[i]) for i in order[:top] if effects[i] > MIN_EFFECT]


class ReasonCodes:
    """Reason codes of one model version: `reasons(values)` for one decision, `frame_reasons(inputs)` for many."""

    def __init__(
        self,
        columns: Sequence[str],
        reference: dict[str, Any],
        score_rows: Callable[[pd.DataFrame], np.ndarray],
        score_one: Callable[[dict[str, Any]], float] | None = None,
        top: int = TOP_REASONS,
        score_one_missing: bool = False,
        model: Any = None,
    ) -> None:
        missing = [c for c in columns if c not in reference]
        if missing:
            raise ValueError(f"the reference applicant lacks {missing}")
        self.columns, self.reference, self.top = list(columns), dict(reference), top
        self.score_rows, self.score_one = score_rows, score_one
        # whether score_one computes a row with a missing value itself (fairway.serving.row_scorer), rather than
        # handing it to the pipeline one row at a time (the linear form): then a frame of the swaps is cheaper
        self.score_one_missing = score_one_missing
        # the numeric inputs, known by their reference value: a column of None in a one-row frame is still a number
        self.numeric = [c for c in self.columns if _is_int(reference[c]) or isinstance(reference[c], float)]
        # a fitted pipeline whose preprocessing maps each input to its own output columns: a frame's swaps are
        # scored from one transform of it (PreparedSwaps); None, or another model, scores each swapped frame
        self.prepared = PreparedSwaps.of(model, self.columns) if model is not None else None

    def reasons(self, values: dict[str, Any], score: float | None = None) -> list[Reason]:
        """The top reasons of one decision (`score`, when given, must be the score of `values`). With a missing
        value the swaps are scored as one frame (missing values as NaN), not one by one by `score_one`, unless
        `score_one_missing` says that score_one computes missing values itself."""
        one_by_one = self.score_one_missing or not any(is_missing(values[c]) for c in self.columns)
        if self.score_one is not None and one_by_one:
            base = self.score_one(values) if score is None else score
            swaps = [{**values, c: self.reference[c]} for c in self.columns]
            many = getattr(self.score_one, "many", None)  # a compiled pipeline scores the swaps in one call
            swapped = many(swaps) if many is not None else [self.score_one(row) for row in swaps]
        else:
            rows = [values] + [{**values, c: self.reference[c]} for c in self.columns]
            scores = self.score_rows(missing_as_nan(pd.DataFrame(rows, columns=self.columns), self.numeric))
            base, swapped = float(scores[0]) if score is None else score, list(scores[1:])
        effects = base - np.asarray(swapped, dtype=float)
        return _top(effects, self.columns, [values[c] for c in self.columns], self.reference, self.top)

    def frame_effects(self, inputs: pd.DataFrame, scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The scores of the rows and, per row and input, `score - score with the input at the reference`: from
        one transform of the frame when the model's preprocessing allows (PreparedSwaps, checked against the
        frame-by-frame scores on the first rows), else one scoring pass per input column."""
        if self.prepared is not None and len(inputs) > PreparedSwaps.CHECK_ROWS:
            head = inputs.iloc[: PreparedSwaps.CHECK_ROWS]
            if self.prepared.agrees(head, self._swapped, self._effects_by_frames(head, None)):
                return self.prepared.effects(inputs, self._swapped, scores)
            log.warning("reason codes: the one-transform swaps disagree with the pipeline; scoring frame by frame")
            self.prepared = None  # not this model's arithmetic: never again for this version
        return self._effects_by_frames(inputs, scores)

    def _effects_by_frames(self, inputs: pd.DataFrame, scores: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        base = self.score_rows(inputs) if scores is None else np.asarray(scores, dtype=float)
        effects = np.empty((len(inputs), len(self.columns)))
        for j, column in enumerate(self.columns):
            effects[:, j] = base - self.score_rows(self._swapped(inputs, column))
        return base, effects

    def _frame_top(self, inputs: pd.DataFrame, scores: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """For every row, the column indices of its top effects in the order of `_top` (effect descending, then
        the column name) and those effects."""
        _, effects = self.frame_effects(inputs, scores)
        return self._top_of(effects)

    def _top_of(self, effects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        by_name = np.argsort(np.argsort(self.columns))
        order = np.lexsort((np.broadcast_to(by_name, effects.shape), -effects), axis=-1)[:, : self.top]
        return order, np.take_along_axis(effects, order, axis=1)

    def _swapped(self, inputs: pd.DataFrame, column: str) -> pd.DataFrame:
        """`inputs` with `column` set to its reference value (in the column's dtype when it takes it)."""
        swapped = inputs.copy()
        at_reference = pd.Series([self.reference[column]] * len(inputs), index=inputs.index)
        try:
            swapped[column] = at_reference.astype(inputs[column].dtype)
        except (TypeError, ValueError):  # e.g. a fractional reference of an Int64 column
            swapped[column] = at_reference
        return swapped

    def frame_reasons(self, inputs: pd.DataFrame, scores: np.ndarray | None = None) -> list[list[Reason]]:
        """Reasons of every row (as `reasons` gives them one by one)."""
        order, chosen = self._frame_top(inputs, scores)
        values = inputs[self.columns].to_numpy(dtype=object)
        return [
            [_reason(self.columns[j], values[i, j], self.reference, e) for j, e in zip(order[i], chosen[i], strict=True)
             if e > MIN_EFFECT]
            for i in range(len(inputs))
        ]  # fmt: skip

    def frame_reasons_json(self, inputs: pd.DataFrame, scores: np.ndarray | None = None) -> list[str]:
        """`dumps` of every row's reasons, the same strings as from `frame_reasons`, assembled column-wise: what
        batch records store (`_reasons_json`)."""
        return self._reasons_json(inputs, *self._frame_top(inputs, scores)).to_pylist()

    def frame_scores_reasons_json(self, inputs: pd.DataFrame) -> tuple[np.ndarray, pa.Array]:
        """The rows' scores and `frame_reasons_json` of them (as an Arrow string array), from one pass (what batch
        scoring needs)."""
        scores, effects = self.frame_effects(inputs)
        return scores, self._reasons_json(inputs, *self._top_of(effects))

    def _reasons_json(self, inputs: pd.DataFrame, order: np.ndarray, chosen: np.ndarray) -> pa.Array:
        """Every row's JSON list of reasons, taken by Arrow from two small dictionaries: the text of each reason
        up to its effect (one per column and distinct value that is among a row's kept reasons, with the text
        that leads it: '[' in a row's first slot, '},' after it) and the text of each distinct rounded effect.
        Building a dict per reason and encoding it took most of the time."""
        import pyarrow.compute as pc

        kept = chosen > MIN_EFFECT  # effects are sorted: a row's kept reasons are a prefix of its slots
        codes = np.zeros(order.shape, dtype=np.int64)  # per row and slot: the reason's entry in `reasons`
        reasons: list[pa.Array] = []
        size = 0
        for j, column in enumerate(self.columns):  # encode only the values that are among a row's kept reasons
            rows, slots = np.nonzero((order == j) & kept)
            texts, which = _json_values(inputs[column].iloc[rows], self.reference[column])
            opening = '{"feature":' + json.dumps(column) + ',"value":'
            closing = ',"reference":' + json.dumps(self.reference[column]) + ',"effect":'
            for lead in ("[", "},"):
                reasons.append(pc.binary_join_element_wise(lead + opening, texts, closing, ""))
            codes[rows, slots] = size + which + np.where(slots == 0, 0, len(texts))
            size += 2 * len(texts)
        effect_texts, effect_codes = _json_effects(chosen, kept)
        dictionary = pa.concat_arrays(reasons) if reasons else pa.array([], pa.string())
        if order.shape[1] == 0:
            return pa.array(["[]"] * len(order), pa.string())
        parts = []
        for k in range(order.shape[1]):  # a slot without a kept reason is null: skipped by the join
            parts += [dictionary.take(pa.array(codes[:, k], mask=~kept[:, k])),
                      effect_texts.take(pa.array(effect_codes[:, k], mask=~kept[:, k]))]  # fmt: skip
        joined = pc.binary_join_element_wise(*parts, "}]", "", null_handling="skip")
        return pc.if_else(pa.array(kept[:, 0]), joined, "[]")


class PreparedSwaps:
    """A fitted `Pipeline([(prep, ColumnTransformer), (final, estimator)])` whose preprocessing gives each input
    its own output columns (a one-column transformer, a StandardScaler or a OneHotEncoder of several columns,
    passthrough): the frame with input i at its reference is the transformed frame with i's columns set to the
    transformed reference, so the frame is transformed once and only the final estimator runs per input. The
    columns are swapped in place and restored (no copy of the matrix per input). The arithmetic is the
    pipeline's own, element for element: the scores are the same doubles as from transforming each swapped frame
    (checked on a frame's first rows before it is used)."""

    CHECK_ROWS = 256

    def __init__(self, prep: Any, final: Any, blocks: dict[str, np.ndarray]) -> None:
        self.prep, self.final, self.blocks = prep, final, blocks

    @classmethod
    def of(cls, model: Any, columns: Sequence[str]) -> PreparedSwaps | None:
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if not isinstance(model, Pipeline) or len(model.steps) != 2 or not hasattr(model.steps[1][1], "predict_proba"):
            return None
        prep, final = model.steps[0][1], model.steps[1][1]
        if not isinstance(prep, ColumnTransformer) or getattr(prep, "sparse_output_", True):
            return None
        blocks: dict[str, list[int]] = {}
        for name, transformer, cols in prep.transformers_:
            if isinstance(transformer, str) and transformer == "drop":
                continue
            cut = prep.output_indices_[name]
            widths = _output_widths(transformer, list(cols), cut.stop - cut.start)
            if widths is None:
                return None
            start = cut.start
            for col, width in zip(cols, widths, strict=True):
                if col in blocks:
                    return None
                blocks[col] = list(range(start, start + width))
                start += width
        if set(blocks) != set(columns):
            return None
        return cls(prep, final, {c: np.asarray(blocks[c], dtype=np.intp) for c in columns})

    def _score(self, prepared: np.ndarray) -> np.ndarray:
        return np.clip(self.final.predict_proba(prepared)[:, 1], 0.0, 1.0)  # as training.predict_scores

    def effects(
        self, inputs: pd.DataFrame, swapped: Callable[[pd.DataFrame, str], pd.DataFrame],
        scores: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The rows' scores (`scores` when given) and, per input, score minus the score with that input at the
        reference; `swapped` sets a frame's column to the reference as the frame-by-frame path does."""
        prepared = self.prep.transform(inputs)
        base = self._score(prepared) if scores is None else np.asarray(scores, dtype=float)
        effects = np.empty((len(inputs), len(self.blocks)))
        for j, (column, block) in enumerate(self.blocks.items()):
            at_reference = self.prep.transform(swapped(inputs.iloc[:1], column))[0, block]
            kept = prepared[:, block].copy()
            prepared[:, block] = at_reference
            effects[:, j] = base - self._score(prepared)
            prepared[:, block] = kept
        return base, effects

    def agrees(self, head: pd.DataFrame, swapped: Callable[[pd.DataFrame, str], pd.DataFrame],
               expected: tuple[np.ndarray, np.ndarray]) -> bool:  # fmt: skip
        """Whether the prepared path gives exactly `expected` (the frame-by-frame scores and effects) on `head`."""
        base, effects = self.effects(head, swapped)
        return bool(np.array_equal(base, expected[0]) and np.array_equal(effects, expected[1], equal_nan=True))


def _output_widths(transformer: Any, cols: list[str], width: int) -> list[int] | None:
    """How many output columns each of a transformer's input columns has (their blocks, in order), when each
    output column depends on one input only; None when that is not known."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def elementwise(step: Any) -> bool:  # each output column is its input column's, value by value
        if isinstance(step, Pipeline):
            return all(elementwise(inner) for _, inner in step.steps)
        plain_imputer = isinstance(step, SimpleImputer) and not step.add_indicator
        return (isinstance(step, str) and step == "passthrough") or isinstance(step, StandardScaler) or plain_imputer

    if len(cols) == 1:
        return [width]
    if elementwise(transformer):
        return [1] * len(cols) if width == len(cols) else None
    if isinstance(transformer, OneHotEncoder) and transformer.drop is None:
        infrequent = getattr(transformer, "infrequent_categories_", None) or [None] * len(cols)
        widths = [len(categories) - (len(rare) - 1 if rare is not None else 0)
                  for categories, rare in zip(transformer.categories_, infrequent, strict=True)]  # fmt: skip
        return widths if sum(widths) == width else None
    return None


def _json_values(series: pd.Series, reference: Any) -> tuple[pa.Array, np.ndarray]:
    """The JSON text of each distinct value of a column as `_value` reports it (as `json.dumps` writes it; a
    missing value: null) and, for every row, the index of its text. Floats are told apart by their bits, so that
    -0.0 is not 0.0."""
    missing = series.isna().to_numpy()
    values = series[~missing].to_numpy()
    if values.dtype.kind == "f":
        bits, distinct_bits = pd.factorize(np.ascontiguousarray(values, dtype=np.float64).view(np.int64))
        codes, distinct = bits, distinct_bits.view(np.float64)
    else:
        codes, distinct = pd.factorize(values)
    texts = pa.concat_arrays([_json_distinct(distinct, reference), pa.array(["null"], pa.string())])
    which = np.full(len(series), len(texts) - 1)
    which[~missing] = codes
    return texts, which


def _json_distinct(distinct: np.ndarray, reference: Any) -> pa.Array:
    """`json.dumps(_value(v, reference))` of each value: finite floats and ints directly by their repr (what
    `json.dumps` writes for them), an integral float as an int when the reference is an int."""
    import pyarrow.compute as pc

    if distinct.dtype.kind in "iu":
        return pc.cast(pa.array(distinct), pa.string())
    if distinct.dtype.kind == "f" and np.isfinite(distinct).all():
        if _is_int(reference):
            texts = [repr(int(value)) if value.is_integer() else repr(value) for value in distinct.tolist()]
            return pa.array(texts, pa.string())
        return float_repr_array(distinct)
    return pa.array([json.dumps(_value(value, reference)) for value in distinct.tolist()], pa.string())


def _json_effects(effects: np.ndarray, kept: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """The JSON text of each distinct kept effect as `_reason` rounds it (`repr(round(effect, 6))`) and, per row
    and slot, the index of its text (0 where not kept). `round(x, 6)` is the double nearest to n / 10**6 for the
    integer n nearest to x * 10**6, and `n / 1e6` (correctly rounded) is that double: n is taken from the float
    product where that product cannot be on the wrong side of a half (|x| < 1000: its error is below 1.2e-7),
    else from `round` itself."""
    values = effects[kept]
    scaled = values * 1e6
    safe = (np.abs(values) < 1e3) & (np.abs(scaled - np.floor(scaled) - 0.5) > 1e-6)
    micros, which = np.unique(np.rint(scaled[safe]), return_inverse=True)
    others = [repr(round(value, 6)) for value in values[~safe].tolist()]
    texts = pa.concat_arrays([float_repr_array(micros / 1e6), pa.array(others, pa.string())])  # micro / 1e6 as Python's
    index = np.empty(len(values), dtype=np.int64)
    index[safe] = which.reshape(-1)
    index[~safe] = len(micros) + np.arange(len(others))
    codes = np.zeros(effects.shape, dtype=np.int64)
    codes[kept] = index
    return texts, codes


def dumps(reasons: list[Reason]) -> str:
    """Reasons as stored in records (compact JSON, keys in a fixed order)."""
    return json.dumps(reasons, separators=(",", ":"))
