"""Raw monthly snapshots: the seeded synthetic credit data, and validation of a month against the use case.

Layout under FAIRWAY_HOME/data/raw/<usecase>/<YYYY-MM>/:
  snapshot.parquet  one row per customer active in the month: key, event timestamp, every snapshot feature
  labels.parquet    outcomes delivered in this month for the previous month's snapshot
                    (key, event timestamp of that snapshot, availability timestamp, label)
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fairway.config import Paths, UseCase, month_str, paths, resolve

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.parquet"
LABELS_FILE = "labels.parquet"
TIMESTAMP_DTYPE = "datetime64[us, UTC]"

GENERATED_COLUMNS = {
    "income", "debt_ratio", "credit_amount", "loan_duration_months", "late_payments_12m", "savings_balance",
    "tenure_months", "employment_type", "housing", "residential_area", "sex", "age", "citizenship",
}  # fmt: skip
EMPLOYMENT = np.array(["permanent", "temporary", "self_employed", "unemployed", "retired"])
HOUSING = np.array(["own", "rent", "family"])
AREAS = np.array(["north", "south", "east", "west", "centre"])


# --- small shared helpers -----------------------------------------------------------------------


def months(start_month: str, count: int) -> list[str]:
    """`count` consecutive months starting at `start_month` ('YYYY-MM')."""
    start = pd.Period(start_month, freq="M")
    return [str(start + i) for i in range(count)]


def months_between(first: str, last: str) -> list[str]:
    """Every month from `first` to `last`, both included (empty when `last` is before `first`)."""
    count = (pd.Period(last, freq="M") - pd.Period(first, freq="M")).n + 1
    return months(first, count) if count > 0 else []


def month_bounds(month: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of a month as UTC timestamps."""
    period = pd.Period(month, freq="M")
    start = period.start_time.tz_localize("UTC")
    end = (period + 1).start_time.tz_localize("UTC")
    return start, end


# the hidden names write_atomic writes to: `.<name>.<32 hex>.tmp` or `.<stem>.<32 hex>.tmp<suffix>`
TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp(\.[^.]+)?$")


def temp_leftovers(root: Path, older_than: float = 0.0) -> list[Path]:
    """The temporary files of `write_atomic` under `root` whose last change is more than `older_than` seconds
    ago: what a writer killed mid-write (SIGKILL, out of memory, a lost machine) leaves behind. A writer that
    fails with an exception removes its own."""
    if not root.is_dir():
        return []
    now = time.time()
    return sorted(
        p for p in root.rglob(".*.tmp*")
        if TEMP_NAME.match(p.name) and p.is_file() and not p.is_symlink() and now - p.stat().st_mtime >= older_than
    )  # fmt: skip


def write_atomic(path: Path, write: Callable[[Path], object], keep_suffix: bool = False) -> Path:
    """Write a file through `write(tmp)` so that readers see the old file or the whole new one, never a part.

    `tmp` is a hidden name in the same folder, flushed to disk, then renamed over `path` (atomic on POSIX file
    systems). By default it does not end like `path`, so a reader globbing `*.parquet` never picks it up;
    `keep_suffix` keeps the suffix for writers that choose the format from it (matplotlib, Evidently's HTML).
    On any failure (the writer's, the flush's, the rename's) the temporary file is removed before the error
    propagates; only a killed process leaves one, which `temp_leftovers` finds (erasure and retention remove them).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    tmp = path.with_name(f".{path.stem}.{token}.tmp{path.suffix}" if keep_suffix else f".{path.name}.{token}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_parquet_atomic(table: pa.Table, path: Path) -> Path:
    """A parquet file written with `write_atomic` (zstd)."""
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


# the floats whose `repr` polars' text is (the same shortest digits, in positional notation): Python writes the
# others (|x| < 1e-4 or >= 1e16, inf, nan) in its exponent form
_POSITIONAL = (1e-4, 1e16)


def float_reprs(values: np.ndarray) -> np.ndarray:
    """`repr` of each float64 (an object array of str), as `float_repr_array` gives them."""
    return float_repr_array(values).to_numpy(zero_copy_only=False).astype(object)


def float_repr_array(values: np.ndarray) -> pa.Array:
    """`repr` of each float64 as an Arrow string array: polars' cast to text where it is the same (1M floats in
    0.15 s against 0.6 s), Python's repr elsewhere."""
    import polars as pl
    import pyarrow.compute as pc

    values = np.ascontiguousarray(values, dtype=np.float64)
    magnitude = np.abs(values)
    positional = ((magnitude >= _POSITIONAL[0]) & (magnitude < _POSITIONAL[1])) | (values == 0)
    texts = pl.Series(values).cast(pl.String).to_arrow().cast(pa.string())
    if positional.all():
        return texts
    others = [repr(v) for v in values[~positional].tolist()]
    return pc.replace_with_mask(texts, pa.array(~positional), pa.array(others, pa.string()))


_NA, _NAT, _FLOATS = pd.NA, pd.NaT, (float, np.floating)


def is_missing(value: Any) -> bool:
    """None, NaN, pd.NA or NaT: a missing value (cheap: the online service asks it of every input)."""
    return value is None or value is _NA or value is _NAT or (isinstance(value, _FLOATS) and bool(value != value))


def missing_as_nan(frame: pd.DataFrame, numeric: Iterable[str] = ()) -> pd.DataFrame:
    """`frame` with every missing value (None, NaN, pd.NA) as NaN, the one marker of a missing value a model
    pipeline sees (scikit-learn's imputers look for NaN, and take None for a category).

    A column holding a missing value becomes float64 when it is numeric (nullable `Int64`, and the columns named
    in `numeric`, e.g. an int input whose only value is None, included), else a column of objects with NaN where a
    value is missing. Columns without a missing value are returned as they are."""
    numbers = set(numeric)
    out = frame
    for column in frame.columns:
        series = frame[column]
        missing = series.isna()
        if not missing.any():
            continue
        if out is frame:
            out = frame.copy()
        if column in numbers or (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)):
            out[column] = series.astype(object).where(~missing, np.nan).astype("float64")
        else:
            out[column] = series.astype(object).where(~missing, np.nan)
    return out


# --- synthetic credit data ----------------------------------------------------------------------


@dataclass
class _Population:
    """State of every customer ever seen; rows are customers, `active` marks who is in the current month."""

    ids: np.ndarray
    active: np.ndarray
    sex: np.ndarray
    citizenship: np.ndarray
    age0: np.ndarray
    joined: np.ndarray
    tenure0: np.ndarray
    area: np.ndarray
    employment: np.ndarray
    housing: np.ndarray
    income: np.ndarray
    credit: np.ndarray
    duration: np.ndarray
    savings: np.ndarray
    late: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def _new_customers(rng: np.random.Generator, first_id: int, n: int, month_index: int, existing: bool) -> dict:
    citizenship = np.where(rng.random(n) < 0.2, "foreign", "national")
    foreign = citizenship == "foreign"
    # The proxy: residential area is strongly associated with citizenship.
    area_p_foreign = np.array([0.05, 0.08, 0.70, 0.07, 0.10])
    area_p_national = np.array([0.25, 0.25, 0.05, 0.25, 0.20])
    area = np.where(foreign, rng.choice(AREAS, n, p=area_p_foreign), rng.choice(AREAS, n, p=area_p_national))
    age0 = rng.integers(18, 76, n)
    employment = rng.choice(EMPLOYMENT, n, p=[0.62, 0.14, 0.12, 0.05, 0.07])
    employment = np.where(age0 >= 66, "retired", np.where(employment == "retired", "permanent", employment))
    housing = np.where(
        age0 < 27, rng.choice(HOUSING, n, p=[0.15, 0.45, 0.40]), rng.choice(HOUSING, n, p=[0.55, 0.4, 0.05])
    )
    sex = np.where(rng.random(n) < 0.5, "female", "male")
    base = {"permanent": 3000.0, "temporary": 2200.0, "self_employed": 3200.0, "unemployed": 1100.0, "retired": 1900.0}
    income = np.array([base[e] for e in employment]) * rng.lognormal(0.0, 0.35, n)
    income *= np.where(sex == "female", 0.92, 1.0) * np.clip(0.75 + age0 / 120, 0.8, 1.25)
    credit = rng.lognormal(np.log(15000), 0.8, n)
    duration = rng.choice(np.array([12, 24, 36, 48, 60, 120, 240]), n, p=[0.1, 0.2, 0.25, 0.15, 0.15, 0.1, 0.05])
    savings = rng.lognormal(np.log(4000), 1.2, n) * np.clip(age0 / 40, 0.3, 2.0)
    late = rng.binomial(12, 0.04, n)
    tenure0 = rng.integers(0, 240, n) if existing else np.zeros(n, dtype=np.int64)
    tenure0 = np.minimum(tenure0, (age0 - 18) * 12)
    return {
        "ids": np.array([f"C{first_id + i:07d}" for i in range(n)]),
        "active": np.ones(n, dtype=bool),
        "sex": sex, "citizenship": citizenship, "age0": age0,
        "joined": np.full(n, month_index), "tenure0": tenure0, "area": area, "employment": employment,
        "housing": housing, "income": income, "credit": credit, "duration": duration, "savings": savings,
        "late": late,
    }  # fmt: skip


def _append(pop: _Population, new: dict) -> None:
    for name, values in new.items():
        setattr(pop, name, np.concatenate([getattr(pop, name), values]))


def _default_probability(pop: _Population, rows: np.ndarray, drifted: bool) -> np.ndarray:
    """The outcome model, including the historical bias against foreign citizens."""
    income = pop.income[rows]
    payment = pop.credit[rows] / pop.duration[rows] * 1.05
    debt_ratio = np.clip(payment / income, 0, 5)
    logit = (
        -1.2
        + 1.4 * debt_ratio
        + 0.45 * pop.late[rows]
        - 0.9 * np.log(income / 2500)
        - 0.25 * np.log1p(pop.savings[rows] / 1000)
        + np.select([pop.employment[rows] == "unemployed", pop.employment[rows] == "temporary"], [1.0, 0.4], 0.0)
        # Historical bias: recorded defaults were inflated for foreign citizens (harsher collection practice),
        # so the labels carry it and the residential area lets a model learn it.
        + np.where(pop.citizenship[rows] == "foreign", 1.7, 0.0)
        + (0.3 if drifted else 0.0)
    )
    return 1.0 / (1.0 + np.exp(-logit))


def _evolve(pop: _Population, rng: np.random.Generator, drift_step: bool) -> None:
    n = len(pop.ids)
    pop.income = pop.income * rng.lognormal(0.0, 0.03, n)
    pop.credit = np.maximum(pop.credit * (1 - 1 / np.maximum(pop.duration, 12)), 0.0)
    pop.savings = np.maximum(pop.savings * rng.lognormal(0.0, 0.05, n), 0.0)
    change = rng.random(n) < 0.015
    pop.employment = np.where(
        change & (pop.employment != "retired"),
        rng.choice(EMPLOYMENT[:4], n, p=[0.55, 0.2, 0.15, 0.10]),
        pop.employment,
    )
    drop = rng.random(n) < pop.late / 12
    add = rng.random(n) < 0.02 + 0.04 * (pop.employment == "unemployed")
    pop.late = np.clip(pop.late - drop + add, 0, 12)
    if drift_step:
        # The drift episode: an income shock and a shift of the employment mix towards insecure work.
        pop.income = pop.income * 0.72
        shift = (pop.employment == "permanent") & (rng.random(n) < 0.35)
        pop.employment = np.where(shift, rng.choice(np.array(["temporary", "self_employed"]), n), pop.employment)


def _snapshot_frame(uc: UseCase, pop: _Population, rows: np.ndarray, month_index: int, ts: np.ndarray) -> pd.DataFrame:
    months_in = month_index - pop.joined[rows]
    age = pop.age0[rows] + months_in // 12
    payment = pop.credit[rows] / pop.duration[rows] * 1.05
    frame = pd.DataFrame(
        {
            uc.entity.join_key: pop.ids[rows],
            uc.event_timestamp: ts,
            "income": np.round(pop.income[rows], 2),
            "debt_ratio": np.round(np.clip(payment / pop.income[rows], 0, 5), 4),
            "credit_amount": np.round(pop.credit[rows], 2),
            "loan_duration_months": pop.duration[rows].astype("int64"),
            "late_payments_12m": pop.late[rows].astype("int64"),
            "savings_balance": np.round(pop.savings[rows], 2),
            "tenure_months": (pop.tenure0[rows] + months_in).astype("int64"),
            "employment_type": pop.employment[rows],
            "housing": pop.housing[rows],
            "residential_area": pop.area[rows],
            "sex": pop.sex[rows],
            "age": age.astype("int64"),
            "citizenship": pop.citizenship[rows],
        }
    )
    ordered = [uc.entity.join_key, uc.event_timestamp] + [f.name for f in uc.snapshot_features]
    return frame[ordered]


def _random_times(rng: np.random.Generator, month: str, n: int) -> np.ndarray:
    start, _ = month_bounds(month)
    offsets = rng.integers(0, 27 * 24 * 3600, n)
    return (start + pd.to_timedelta(offsets, unit="s")).astype(TIMESTAMP_DTYPE)


def generate(
    uc: UseCase,
    customers: int,
    n_months: int,
    seed: int,
    drift_month: int | None = None,
    churn: float = 0.02,
    start_month: str | None = None,
    out: Paths | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write `n_months` monthly raw snapshots of a synthetic credit portfolio; same arguments, same bytes.

    Customers join and leave (churn, with as many joiners on average), incomes, balances and late payments
    evolve month to month. From `drift_month` (1-based) on, incomes drop and the employment mix shifts.
    """
    missing = GENERATED_COLUMNS - {f.name for f in uc.snapshot_features}
    extra = {f.name for f in uc.snapshot_features} - GENERATED_COLUMNS
    if missing or extra:
        raise ValueError(
            f"the synthetic credit generator makes {sorted(GENERATED_COLUMNS)}; use case '{uc.name}' differs "
            f"(missing {sorted(missing)}, unknown {sorted(extra)}): import your own data instead"
        )
    out = out or paths()
    rng = np.random.default_rng(seed)
    pop = _Population(**_new_customers(rng, 1, customers, 0, existing=True))
    next_id = customers + 1
    written: list[Path] = []
    previous: pd.DataFrame | None = None
    for index, month in enumerate(months(start_month or uc.start_month, n_months)):
        drift_now = drift_month is not None and index + 1 == drift_month
        drifted = drift_month is not None and index + 1 >= drift_month
        if index > 0:
            leaving = pop.active & (rng.random(len(pop.ids)) < churn)
            pop.active = pop.active & ~leaving
            joiners = int(rng.poisson(customers * churn))
            _append(pop, _new_customers(rng, next_id, joiners, index, existing=False))
            next_id += joiners
            _evolve(pop, rng, drift_step=drift_now)
        elif drift_now:
            _evolve(pop, rng, drift_step=True)
        rows = np.flatnonzero(pop.active)
        snapshot = _snapshot_frame(uc, pop, rows, index, _random_times(rng, month, len(rows)))
        p_default = _default_probability(pop, rows, drifted)
        outcome = (rng.random(len(rows)) < p_default).astype("int64")
        folder = out.raw_month(uc.name, month)
        written.append(write_parquet_atomic(to_arrow(snapshot), folder / SNAPSHOT_FILE))
        written.append(write_parquet_atomic(to_arrow(_labels_for(uc, previous, rng, month)), folder / LABELS_FILE))
        previous = snapshot[[uc.entity.join_key, uc.event_timestamp]].assign(**{uc.label.feature: outcome})
        if progress:
            progress(f"{month}: {len(rows):,} customers, default rate {outcome.mean():.3f}")
    return written


def empty_labels(uc: UseCase) -> pd.DataFrame:
    """The labels file of a first month: no outcomes delivered yet, the columns and types of every other month."""
    key, ts, label, available = uc.entity.join_key, uc.event_timestamp, uc.label.feature, uc.label.available_timestamp
    return pd.DataFrame(
        {key: pd.Series(dtype="object"), ts: pd.Series(dtype=TIMESTAMP_DTYPE),
         available: pd.Series(dtype=TIMESTAMP_DTYPE), label: pd.Series(dtype="int64")}
    )  # fmt: skip


def _labels_for(uc: UseCase, previous: pd.DataFrame | None, rng: np.random.Generator, month: str) -> pd.DataFrame:
    """Labels delivered in `month`: the outcomes of the previous month's snapshot."""
    if previous is None:
        return empty_labels(uc)
    frame = previous.copy()
    frame[uc.label.available_timestamp] = _random_times(rng, month, len(frame))
    return frame[[uc.entity.join_key, uc.event_timestamp, uc.label.available_timestamp, uc.label.feature]]


# --- reading and validating a month -------------------------------------------------------------


class SnapshotValidationError(ValueError):
    """A month's raw data breaks the use case's rules; the message names rows and columns."""


@dataclass(frozen=True)
class ValidatedMonth:
    month: str
    snapshot: pd.DataFrame
    labels: pd.DataFrame

    def summary(self) -> dict[str, int | str]:
        return {"month": self.month, "snapshot_rows": len(self.snapshot), "label_rows": len(self.labels)}


def _problems_for_column(
    frame: pd.DataFrame, spec_name: str, key: str, check: pd.Series, what: str, hint: str = ""
) -> Iterator[str]:
    bad = frame.index[check.fillna(False).to_numpy(dtype=bool)]
    if len(bad):
        examples = ", ".join(f"row {i} ({key}={frame.at[i, key]})" for i in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        yield f"column '{spec_name}': {len(bad)} row(s) {what}: {examples}{more}{hint}"


def _check_timestamp(frame: pd.DataFrame, column: str, key: str, month: str | None) -> Iterator[str]:
    """A timestamp column is tz-aware and complete; with `month`, every value falls inside that month."""
    if column not in frame:
        return
    series = frame[column]
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        yield f"column '{column}': must be a timezone-aware UTC timestamp, found {series.dtype}"
        return
    yield from _problems_for_column(frame, column, key, series.isna(), "are empty")
    if month is not None:
        start, end = month_bounds(month)
        yield from _problems_for_column(frame, column, key, (series < start) | (series >= end), f"fall outside {month}")


def _is_bool_column(series: pd.Series, nullable: bool) -> bool:
    """A bool column: bool dtype or pandas' `boolean`; for a nullable feature also objects, True/False or missing."""
    if pd.api.types.is_bool_dtype(series):
        return True
    objects = nullable and pd.api.types.is_object_dtype(series)
    return objects and all(isinstance(v, bool | np.bool_) for v in series.dropna())


def _check_features(uc: UseCase, frame: pd.DataFrame, names: list[str]) -> Iterator[str]:
    """Types and rules of the features. A missing value (None, NaN, pd.NA) is refused in a feature that is not
    `nullable`; in a nullable one it is allowed and no rule applies to it. The rules hold for the values present:
    numbers in [min, max], whole numbers for an int feature, categories among `allowed`.

    Missing values of a nullable int feature: pandas' `Int64` (parquet int64 with nulls), or float64 with NaN whose
    other values are whole numbers; the offline store keeps both as int64 with nulls. A nullable column with no value
    at all may have any type (parquet stores it as nulls)."""
    key = uc.entity.join_key
    for name in names:
        spec = uc.feature(name)
        if name not in frame:
            continue
        series = frame[name]
        missing = series.isna()
        if not spec.nullable:
            hint = f"; '{name}' is not nullable: fill these values, or declare the feature `nullable: true`"
            yield from _problems_for_column(frame, name, key, missing, "are empty", hint)
        elif missing.all():
            continue
        if spec.dtype in ("float", "int"):
            if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
                yield f"column '{name}': expected {spec.dtype}, found {series.dtype}"
                continue
            if spec.dtype == "int" and not pd.api.types.is_integer_dtype(series):
                fractional = ~missing & (series != np.floor(series))
                yield from _problems_for_column(frame, name, key, fractional, "are not whole numbers")
            if spec.min is not None:
                yield from _problems_for_column(
                    frame, name, key, ~missing & (series < spec.min), f"are below the minimum {spec.min:g}"
                )
            if spec.max is not None:
                yield from _problems_for_column(
                    frame, name, key, ~missing & (series > spec.max), f"are above the maximum {spec.max:g}"
                )
        elif spec.dtype == "string":
            if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
                yield f"column '{name}': expected string, found {series.dtype}"
                continue
            if spec.allowed is not None:
                unknown = ~missing & ~series.isin(spec.allowed)
                yield from _problems_for_column(frame, name, key, unknown, f"hold values outside {spec.allowed}")
        elif spec.dtype == "bool" and not _is_bool_column(series, spec.nullable):
            yield f"column '{name}': expected bool, found {series.dtype}"


def _check_frame(
    uc: UseCase, frame: pd.DataFrame, file: str, month: str, required: list[str], in_month: str,
    other_timestamps: list[str], features: list[str], unique_key: bool,
) -> list[str]:  # fmt: skip
    key = uc.entity.join_key
    problems = [f"missing column '{c}'" for c in required if c not in frame]
    if key in frame:
        problems += list(_problems_for_column(frame, key, key, frame[key].isna(), "have no key"))
        if unique_key:
            problems += list(_problems_for_column(frame, key, key, frame[key].duplicated(keep=False), "repeat a key"))
    problems += list(_check_timestamp(frame, in_month, key, month))
    for column in other_timestamps:
        problems += list(_check_timestamp(frame, column, key, None))
    problems += list(_check_features(uc, frame, features))
    return [f"{file}: {p}" for p in problems]


def read_month(uc: UseCase, month: str, out: Paths | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = (out or paths()).raw_month(uc.name, month)
    missing = [name for name in (SNAPSHOT_FILE, LABELS_FILE) if not (folder / name).is_file()]
    if missing:
        raise SnapshotValidationError(f"raw data for {month} is missing: {', '.join(str(folder / m) for m in missing)}")
    try:
        snapshot = pd.read_parquet(folder / SNAPSHOT_FILE)
        labels = pd.read_parquet(folder / LABELS_FILE)
    except (OSError, pa.ArrowException) as exc:
        raise SnapshotValidationError(f"raw data for {month} in {folder} cannot be read: {exc}") from None
    return snapshot, labels


def validate_month(usecase: UseCase | str | None, month: str, out: Paths | None = None) -> ValidatedMonth:
    """Read and check a month's raw files; raise SnapshotValidationError listing every problem found."""
    uc = resolve(usecase)
    month = month_str(month)
    snapshot, labels = read_month(uc, month, out)
    key, ts = uc.entity.join_key, uc.event_timestamp
    label, available = uc.label.feature, uc.label.available_timestamp
    snapshot_features = [f.name for f in uc.snapshot_features]
    problems = _check_frame(
        uc, snapshot, SNAPSHOT_FILE, month, [key, ts, *snapshot_features], ts, [], snapshot_features, unique_key=True
    )
    problems += _check_frame(
        uc, labels, LABELS_FILE, month, [key, ts, available, label], available, [ts], [label], unique_key=False
    )
    if label in labels and not problems:
        allowed = {uc.label.positive_value, uc.label.favourable_value}
        problems += [
            f"{LABELS_FILE}: {p}"
            for p in _problems_for_column(
                labels, label, key, ~labels[label].isin(allowed), f"are not in {sorted(map(str, allowed))}"
            )
        ]
        problems += [
            f"{LABELS_FILE}: {p}"
            for p in _problems_for_column(
                labels, ts, key, labels[ts] >= labels[available], "are known before their snapshot"
            )
        ]
        problems += [
            f"{LABELS_FILE}: {p}"
            for p in _problems_for_column(
                labels, key, key, labels.duplicated([key, ts], keep=False), "repeat a key and snapshot"
            )
        ]
    if problems:
        raise SnapshotValidationError(
            f"{uc.name} {month}: {len(problems)} problem(s) in the raw data:\n  - " + "\n  - ".join(problems)
        )
    return ValidatedMonth(month, snapshot, labels)


def available_months(uc: UseCase, out: Paths | None = None) -> list[str]:
    root = (out or paths()).raw / uc.name
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / SNAPSHOT_FILE).is_file())


def validate_month_summary(usecase: UseCase | str | None, month: str) -> dict[str, int | str]:
    """validate_month for a task: row counts when the month is valid, SnapshotValidationError otherwise."""
    return validate_month(usecase, month).summary()
