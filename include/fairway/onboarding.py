"""Bring your own dataset: `fairway usecase init` turns a tabular CSV into a use case and its raw monthly data.

`init_usecase` inspects the file, asks nothing, and either writes FAIRWAY_HOME/usecases/<name>.yaml plus the raw
partitions FAIRWAY_HOME/data/raw/<name>/<YYYY-MM>/{snapshot,labels}.parquet, or raises `DatasetError` naming every
problem it found. The rules, in the order they apply:

Reading
  - UTF-8 (a byte-order mark is ignored), comma-separated unless `sep` says otherwise, one header line. Every cell
    is read as text, stripped of surrounding spaces; an empty cell or one of pandas' missing markers (NA, N/A, NaN,
    null, None, ...) is a missing value.

Column names
  - Each column becomes a feature named by sanitising its header: lower case, every run of characters other than
    a-z and 0-9 becomes one "_", leading and trailing "_" are dropped, and a name that is empty or starts with a
    digit gets the prefix "c_" ("Loan Amount (EUR)" -> loan_amount_eur, "2nd job" -> c_2nd_job).
  - Names Fairway uses for its own columns (RESERVED: the timestamps, Feast's event_timestamp, the prediction
    record fields such as score and decision) get the suffix "_value" (score -> score_value).
  - Two headers that end up with the same name, a repeated or empty header, are errors.

Roles
  - target: the label; entity: the id column (optional); timestamp: the time column (optional); protected: the
    protected attributes. Each is named by its header (or its sanitised name) and a column has one role at most.
    Every other column is a model input; at least one is needed.

Types (of every feature, protected attributes included)
  - int: every value is a whole number written without a decimal point (-3, 0, 42);
  - float: otherwise, every value is a finite number (3.5, 1e3);
  - string (bool-like): every value is true or false in any letter case -> a category with values "false"/"true";
  - string: anything else -> a category whose `allowed` values are the observed values.
  - numbers get `min: 0` when no value is negative, and no other bound.
  - errors: a column with a missing value (named with its count and first lines), a column with a single value
    (constant), a text column with more than MAX_CATEGORIES distinct values or with distinct values in more than
    half of its rows (an id or free text: drop it, or name it as --entity).

Protected attributes
  - tagged `protected: true`, kept in the offline-only view `<name>_protected` read by the `fairness_audit_v1`
    service: used to measure fairness, never a model input.
  - a category gets one group per value (group key: the value in lower case with non-alphanumeric runs turned
    into "_", "_2", "_3"... on a clash); the reference group is the most frequent value (ties: the first in sort
    order).
  - a number is split at its median X (int columns: rounded up to a whole number; when X is the minimum, the next
    larger value) into `under_X` (values < X, `max: X`) and `X_and_over` (values >= X, `min: X`), as
    fairway.fairness.group_mask reads a range [min, max); the reference group is the larger one (ties:
    X_and_over). X in a group key is written with "." as "_" and "-" as "minus_".

The label
  - the target must hold exactly two distinct values (any two). The positive value is the adverse outcome the
    model scores (a decision declines when its probability reaches gate.decision_threshold): `positive` names it
    (its text as in the file, letter case ignored when that is unambiguous); without it: 1 when the values are 0
    and 1 (as numbers), true when they are true/false, else the less frequent value (a tie is an error: name it).
  - stored as the int feature `<target>` with 1 = the positive value and 0 = the other one (favourable); the
    original values are written into the label's description.

Ids and months
  - without `entity`, every row is its own subject: `row_id` = "R" + its 1-based row number in the file, 7 digits
    (R0000001, R0000002, ...).
  - without `timestamp`, the rows are spread in file order over consecutive months from `start_month` (default
    DEFAULT_START_MONTH, 2024-01): min(MAX_MONTHS, rows // MIN_ROWS_PER_MONTH) months (12 and 150), at least one;
    row i (0-based) of n goes to month floor(i * months / n), so months differ by one row at most (1,000 rows:
    6 months of 166 or 167, enough to train on 3 and score 2; 1,800 rows or more: 12 months). The event time of a
    row is the first instant of its month (UTC).
  - with `timestamp`, values must be ISO 8601 dates or date-times (YYYY-MM-DD[THH:MM[:SS]][offset]; without an
    offset, UTC); a row's month is its timestamp's month and the timestamp is its event time. The months from
    the first to the last must each hold rows (the pipeline runs month by month).
  - an entity id that appears twice in the same month is an error naming it.
  - the outcomes of month M's rows are delivered in the labels of month M+1 at its first instant (as
    `label.available_after_months: 1` says); those of the last month would arrive after the data ends and are
    not imported.

The config
  - views `<name>_inputs` (online, TTL 95 days), `<name>_protected` (offline, TTL 400 days), `<name>_outcomes`
    (the label); services `<name>_model_v1`, `fairness_audit_v1`, `<name>_labels_v1`; gate and drift settings as
    the built-in credit_risk's (TEMPLATE_USECASE) with `approval_mode: human`; no `synthetic:` section; catalogue
    tags on every field and the entity: personal_data true, `legal_basis` (protected attributes: `protected_legal_basis`),
    `retention_months`. The config is validated with config.parse_usecase and every imported month with
    data.validate_month before the YAML file is written.
  - the name must be a lower-case identifier that no built-in use case and no file in $FAIRWAY_USECASES_DIR
    uses; an existing FAIRWAY_HOME/usecases/<name>.yaml is only replaced with `force` (the raw data of the name
    is replaced with it).

What the data supports (`InitResult.notes`): how many months the lifecycle gets (`lifecycle`), small protected
groups, months with few rows, likely proxies of protected attributes (association >= PROXY_ASSOCIATION), id-like
numeric columns.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import yaml

from fairway.config import (
    BUILTIN_USECASES_DIR,
    CatalogueTags,
    ConfigError,
    Paths,
    UseCase,
    load_usecase_file,
    parse_usecase,
    paths,
)
from fairway.data import (
    LABELS_FILE,
    SNAPSHOT_FILE,
    TIMESTAMP_DTYPE,
    empty_labels,
    month_bounds,
    months_between,
    to_arrow,
    validate_month,
    write_atomic,
    write_parquet_atomic,
)
from fairway.data import months as consecutive_months
from fairway.records import PREDICTION_COLUMNS

DEFAULT_START_MONTH = "2024-01"
MIN_ROWS_PER_MONTH = 150
MAX_MONTHS = 12
MAX_CATEGORIES = 50
PROXY_ASSOCIATION = 0.5
SMALL_GROUP_ROWS_PER_MONTH = 30
MIN_TRAIN_MONTHS = 3  # labels delivered in two months at least: one to train on, the latest held out
DEFAULT_TRAIN_UNTIL = 6

ROW_ID = "row_id"
EVENT_TIMESTAMP = "snapshot_ts"
LABEL_TIMESTAMP = "label_ts"
# Fairway's own column names: Feast's entity timestamp, the prediction records (monitoring joins protected
# attributes onto them), the training frame's month column
RESERVED = frozenset({EVENT_TIMESTAMP, LABEL_TIMESTAMP, "event_timestamp", "created_timestamp", *PREDICTION_COLUMNS})
# the gate and drift settings of an imported use case: the built-in credit_risk's (approval by a person)
TEMPLATE_USECASE = BUILTIN_USECASES_DIR / "credit_risk.yaml"
LEGAL_BASES = tuple(b for b in get_args(CatalogueTags.model_fields["legal_basis"].annotation) if b != "none")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_INT = r"[+-]?\d+"
_ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")


class DatasetError(ValueError):
    """The file (or the command) cannot become a use case; the message names every problem found."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n  - " + "\n  - ".join(self.problems))


# --- rules --------------------------------------------------------------------------------------------------


def sanitise(header: str) -> str:
    """A header as a feature name: lower case, non-alphanumeric runs -> "_", "c_" before a leading digit."""
    name = re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")
    return f"c_{name}" if not name or name[0].isdigit() else name


def feature_name(header: str) -> str:
    """`sanitise`, with the suffix "_value" on a name Fairway reserves for its own columns."""
    name = sanitise(header)
    return f"{name}_value" if name in RESERVED else name


def row_ids(count: int) -> list[str]:
    """Generated subject ids in file order: R0000001, R0000002, ..."""
    return [f"R{i:07d}" for i in range(1, count + 1)]


def month_count(rows: int) -> int:
    """How many months rows without a timestamp are spread over."""
    return max(1, min(MAX_MONTHS, rows // MIN_ROWS_PER_MONTH))


def spread_months(rows: int, start_month: str = DEFAULT_START_MONTH) -> list[str]:
    """The month of each row (file order) when the file has no timestamp: consecutive blocks of equal size
    (+-1 row) over `month_count(rows)` months from `start_month`."""
    count = month_count(rows)
    names = consecutive_months(start_month, count)
    return [names[i * count // rows] for i in range(rows)]


def default_positive(values: Sequence[str], counts: dict[str, int]) -> str:
    """The adverse outcome of a two-valued target when none is named (see the module docstring)."""
    numbers = {v: _number(v) for v in values}
    if all(n is not None for n in numbers.values()) and sorted(n for n in numbers.values() if n is not None) == [0, 1]:
        return next(v for v, n in numbers.items() if n == 1)
    lowered = {v.lower(): v for v in values}
    if set(lowered) == {"false", "true"}:
        return lowered["true"]
    first, second = sorted(values, key=lambda v: (counts[v], v))
    if counts[first] == counts[second]:
        raise ValueError(
            f"its values '{first}' and '{second}' are equally frequent: name the adverse outcome with --positive"
        )
    return first


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# --- what the data supports ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lifecycle:
    """How `make demo` uses the months: train on labels known at the end of month `train_until` (1-based),
    then score the later months, monitoring each; judged months are scored months whose outcomes arrive."""

    months: list[str]
    train_until: int
    notes: list[str]

    @property
    def history(self) -> list[str]:
        return self.months[: self.train_until]

    @property
    def scored(self) -> list[str]:
        return self.months[self.train_until :]

    @property
    def runnable(self) -> bool:
        return self.train_until >= MIN_TRAIN_MONTHS and len(self.scored) >= 1


def _span(months: Sequence[str]) -> str:
    return months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}"


def lifecycle(months: Sequence[str], train_until: int | None = None) -> Lifecycle:
    """The demo's plan for these months: by default train until min(6, months - 2), at least month 3."""
    months = list(months)
    if train_until is None:
        train_until = max(MIN_TRAIN_MONTHS, min(DEFAULT_TRAIN_UNTIL, len(months) - 2))
    train_until = min(train_until, len(months))
    plan = Lifecycle(months, train_until, [])
    notes = plan.notes
    if len(months) < MIN_TRAIN_MONTHS + 1:
        notes.append(
            f"only {len(months)} month(s): training needs {MIN_TRAIN_MONTHS} (outcomes delivered in at least two "
            "months, the latest held out) and scoring at least one month more: the lifecycle (make demo) cannot run; "
            "import more rows (or a timestamp column spanning more months)"
        )
    elif train_until < MIN_TRAIN_MONTHS:
        notes.append(f"training until month {train_until} is too early: it needs {MIN_TRAIN_MONTHS} months at least")
    elif not plan.scored:
        notes.append(f"training until month {train_until} leaves no month to score: nothing is scored or monitored")
    else:
        scored = plan.scored
        notes.append(
            f"make demo trains on outcomes known at the end of {plan.history[-1]} (snapshots "
            f"{_span(plan.history[:-1])}, the latest held out), then scores {len(scored)} month(s) "
            f"{_span(scored)} and monitors their drift"
        )
        if len(scored) == 1:
            notes.append(
                f"only one month after training ({scored[0]}): its drift is monitored, but no decision meets its "
                "outcome (judging decisions needs a second scored month)"
            )
        else:
            notes.append(
                f"decisions of {len(scored) - 1} month(s) ({_span(scored[:-1])}) meet their outcomes one month "
                "later (judged AUC and fairness); the last month's are never judged"
            )
    return plan


# --- the result ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnReport:
    source: str
    feature: str
    role: Literal["entity", "timestamp", "label", "protected", "model input"]
    dtype: str
    rule: str


@dataclass
class InitResult:
    usecase: UseCase
    config_path: Path
    csv_path: Path
    raw_dir: Path
    csv_sha256: str
    rows: int
    months: dict[str, int]
    label_rows: int
    positive: str
    favourable: str
    columns: list[ColumnReport]
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """What was written, how each column was read, and what the data can and cannot support."""
        uc = self.usecase
        width = max(len(c.source) for c in self.columns)
        lines = [
            f"use case '{uc.name}' written to {self.config_path}",
            f"  from {self.csv_path} ({self.rows:,} rows, sha256 {self.csv_sha256[:16]}...)",
            f"  raw data: {len(self.months)} month(s) {next(iter(self.months))}..{next(reversed(self.months))} "
            f"under {self.raw_dir} ({', '.join(f'{m}: {n}' for m, n in self.months.items())}); "
            f"{self.label_rows:,} outcomes delivered",
            f"  label: '{uc.label.feature}' = 1 when '{self.positive}' (the adverse outcome the model scores), "
            f"0 when '{self.favourable}'",
            "",
            f"  {'column':<{width}}  {'feature':<24} {'role':<11} {'type':<7} rule",
        ]
        lines += [f"  {c.source:<{width}}  {c.feature:<24} {c.role:<11} {c.dtype:<7} {c.rule}" for c in self.columns]
        if self.notes:
            lines += ["", "what the data supports:"] + [f"  - {note}" for note in self.notes]
        lines += [
            "",
            f"next: make demo USECASE={uc.name}   (or: fairway --usecase {uc.name} features apply, then the DAGs)",
        ]
        return "\n".join(lines)


# --- reading and inspecting the file ------------------------------------------------------------------------


@dataclass
class _Column:
    source: str
    name: str
    text: pd.Series  # stripped text, NaN where missing
    dtype: Literal["int", "float", "string"] = "string"
    rule: str = ""
    values: pd.Series | None = None  # converted (only when the column has no missing value)


def _lines(index: Iterable[int], limit: int = 5) -> str:
    rows = [int(i) + 2 for i in index]  # line 1 is the header
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"line{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows[:limit]))}{more}"


def _read(csv_path: Path, sep: str) -> pd.DataFrame:
    source = str(csv_path)
    if not csv_path.is_file():
        raise DatasetError(source, ["the file does not exist"])
    try:
        with open(csv_path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle, delimiter=sep), None)
    except UnicodeDecodeError as exc:
        raise DatasetError(source, [f"not UTF-8 text: {exc}"]) from None
    if not header or all(not h.strip() for h in header):
        raise DatasetError(source, ["the file is empty (no header line)"])
    problems = []
    stripped = [h.strip() for h in header]
    if "" in stripped:
        problems.append(f"column {stripped.index('') + 1} has no header")
    repeated = sorted({h for h in stripped if h and stripped.count(h) > 1})
    if repeated:
        problems.append(f"repeated column header(s): {repeated}")
    if problems:
        raise DatasetError(source, problems)
    try:
        frame = pd.read_csv(csv_path, sep=sep, dtype=str, encoding="utf-8-sig", keep_default_na=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DatasetError(source, [f"cannot be read as CSV (separator {sep!r}): {exc}"]) from None
    frame.columns = stripped
    if frame.empty:
        raise DatasetError(source, ["the file has a header but no rows"])
    for header in frame.columns:
        text = frame[header].str.strip()
        frame[header] = text.where(text != "", np.nan)
    return frame.reset_index(drop=True)


def _find(frame: pd.DataFrame, wanted: str, role: str, problems: list[str]) -> str | None:
    """The header a role names: exactly, else the one whose sanitised name matches."""
    if wanted in frame.columns:
        return wanted
    matches = [c for c in frame.columns if sanitise(c) == sanitise(wanted)]
    if len(matches) == 1:
        return matches[0]
    problems.append(f"{role} column '{wanted}' is not in the file (columns: {', '.join(frame.columns)})")
    return None


def _infer(column: _Column) -> None:
    """Type and converted values of a column without missing values (rules in the module docstring)."""
    text = column.text
    if text.str.fullmatch(_INT).all():
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers.notna().all() and pd.api.types.is_integer_dtype(numbers):
            column.dtype, column.rule, column.values = "int", "whole numbers", numbers.astype("int64")
            return
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all() and np.isfinite(numbers.to_numpy(dtype=float)).all():
        column.dtype, column.rule, column.values = "float", "numbers", numbers.astype("float64")
        return
    lowered = text.str.lower()
    if set(lowered) <= {"true", "false"}:
        column.dtype, column.rule, column.values = "string", "true/false -> category", lowered.astype(object)
        return
    column.dtype, column.rule, column.values = "string", "text -> category", text.astype(object)


def _group_key(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_") or "group"


def _number_key(value: float) -> str:
    return f"{value:g}".replace("+", "").replace("-", "minus_").replace(".", "_")


def _groups(column: _Column) -> tuple[dict[str, dict[str, Any]], str, pd.Series]:
    """Groups and reference group of a protected attribute, and each row's group key."""
    values = column.values
    assert values is not None
    if column.dtype == "string":
        counts = values.value_counts()
        keys: dict[str, str] = {}
        for value in sorted(counts.index):
            key = _group_key(value)
            suffix = 2
            while key in keys.values():
                key, suffix = f"{_group_key(value)}_{suffix}", suffix + 1
            keys[value] = key
        reference = min(counts.index, key=lambda v: (-counts[v], v))
        groups = {keys[v]: {"values": [v]} for v in sorted(counts.index)}
        return groups, keys[reference], values.map(keys)
    numbers = values.to_numpy(dtype=float)
    split = float(np.median(numbers))
    if column.dtype == "int":
        split = float(math.ceil(split))
    if not (numbers < split).any():
        split = float(numbers[numbers > numbers.min()].min())
    bound: float | int = int(split) if column.dtype == "int" or split.is_integer() else split
    under, over = f"under_{_number_key(split)}", f"{_number_key(split)}_and_over"
    is_over = numbers >= split
    reference = under if (~is_over).sum() > is_over.sum() else over
    labels = pd.Series(np.where(is_over, over, under), index=values.index)
    return {under: {"max": bound}, over: {"min": bound}}, reference, labels


def _association(feature: _Column, groups: pd.Series) -> float:
    """Cramér's V (category) or the correlation ratio (number) between a model input and a protected
    attribute's groups: 0 = unrelated, 1 = the input determines the group (or the group the input)."""
    values = feature.values
    assert values is not None
    if feature.dtype == "string":
        table = pd.crosstab(values, groups).to_numpy(dtype=float)
        if min(table.shape) < 2:
            return 0.0
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
        chi2 = float(((table - expected) ** 2 / expected).sum())
        return math.sqrt(chi2 / (table.sum() * (min(table.shape) - 1)))
    numbers = values.astype(float)
    total = float(((numbers - numbers.mean()) ** 2).sum())
    if total == 0:
        return 0.0
    by_group = numbers.groupby(groups.to_numpy())
    between = float((by_group.count() * (by_group.mean() - numbers.mean()) ** 2).sum())
    return math.sqrt(between / total)


def _check_name(name: str, force: bool, out: Paths) -> list[str]:
    problems = []
    if not _NAME.match(name):
        problems.append(f"use-case name '{name}' must be a lower-case identifier (a-z, 0-9, _; starting with a letter)")
        return problems
    if (BUILTIN_USECASES_DIR / f"{name}.yaml").is_file():
        problems.append(f"use-case name '{name}' is a built-in use case: choose another name")
    override = os.environ.get("FAIRWAY_USECASES_DIR")
    if override and (Path(override) / f"{name}.yaml").is_file():
        problems.append(
            f"use-case name '{name}' is already used by {Path(override) / f'{name}.yaml'} ($FAIRWAY_USECASES_DIR, "
            "looked up first): choose another name"
        )
    existing = out.home / "usecases" / f"{name}.yaml"
    if existing.is_file() and not force:
        problems.append(f"use case '{name}' already exists ({existing}): choose another name, or pass --force to "
                        "replace it and its raw data")  # fmt: skip
    return problems


# --- the import ---------------------------------------------------------------------------------------------


def init_usecase(
    name: str,
    csv_path: str | Path,
    target: str,
    protected: Sequence[str],
    entity: str | None = None,
    timestamp: str | None = None,
    positive: str | None = None,
    *,
    legal_basis: str = "contract",
    protected_legal_basis: str = "legal_obligation",
    retention_months: int = 84,
    owner: str = "model-owner",
    description: str | None = None,
    start_month: str = DEFAULT_START_MONTH,
    sep: str = ",",
    force: bool = False,
    out: Paths | None = None,
) -> InitResult:
    """Inspect `csv_path`, write the use case `name` and import its rows as raw monthly data (module docstring)."""
    out = out or paths()
    csv_path = Path(csv_path)
    source = str(csv_path)
    problems = _check_name(name, force, out)
    for option, basis in (("legal basis", legal_basis), ("protected legal basis", protected_legal_basis)):
        if basis not in LEGAL_BASES:
            problems.append(f"{option} '{basis}' is not one of {', '.join(LEGAL_BASES)}")
    if not 0 < retention_months <= 1200:
        problems.append(f"retention of {retention_months} months is not in 1..1200")
    if not protected:
        problems.append("at least one protected column is needed (--protected)")
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", start_month):
        problems.append(f"start month '{start_month}' is not a month in the form YYYY-MM")
    try:
        frame = _read(csv_path, sep)
    except DatasetError as exc:
        raise DatasetError(source, problems + exc.problems) from None

    # roles
    target_col = _find(frame, target, "target", problems)
    entity_col = _find(frame, entity, "entity", problems) if entity else None
    time_col = _find(frame, timestamp, "timestamp", problems) if timestamp else None
    protected_cols = [c for c in (_find(frame, p, "protected", problems) for p in protected) if c]
    roles: dict[str, str] = {}
    for role, chosen in [("target", target_col), ("entity", entity_col), ("timestamp", time_col)] + [
        ("protected", c) for c in protected_cols
    ]:
        if chosen is None:
            continue
        if chosen in roles:
            problems.append(f"column '{chosen}' cannot be both {roles[chosen]} and {role}")
        roles.setdefault(chosen, role)

    # names
    columns: dict[str, _Column] = {}
    named = [c for c in frame.columns if c not in (entity_col, time_col)]
    by_name: dict[str, list[str]] = {}
    for header in named:
        by_name.setdefault(feature_name(header), []).append(header)
    for feature, headers in by_name.items():
        if len(headers) > 1:
            problems.append(f"columns {headers} all become the feature name '{feature}': rename them")
    key = feature_name(entity_col) if entity_col else ROW_ID
    for header in named:
        if feature_name(header) == key:
            problems.append(f"column '{header}' becomes '{key}', the name of the {'entity' if entity_col else 'generated id'} column: rename it")  # fmt: skip
        columns[header] = _Column(header, feature_name(header), frame[header])

    # missing values (every column), then types
    for header in frame.columns:
        missing = frame[header].isna()
        if missing.any():
            problems.append(f"column '{header}': {int(missing.sum())} missing value(s) ({_lines(frame.index[missing])}): "
                            "fill or drop them")  # fmt: skip
    for column in columns.values():
        if column.text.notna().all():
            _infer(column)

    # the target
    positive_text = favourable_text = ""
    if target_col is not None and frame[target_col].notna().all():
        counts = frame[target_col].value_counts()
        values = sorted(counts.index)
        if len(values) != 2:
            shown = ", ".join(f"'{v}'" for v in values[:10]) + (", ..." if len(values) > 10 else "")
            problems.append(f"target column '{target_col}' must have exactly two values, found {len(values)}: {shown}")
        else:
            if positive is None:
                try:
                    positive_text = default_positive(values, counts.to_dict())
                except ValueError as exc:
                    problems.append(f"target column '{target_col}': {exc}")
            else:
                exact = [v for v in values if v == positive.strip()]
                loose = [v for v in values if v.lower() == positive.strip().lower()]
                found = exact or (loose if len(loose) == 1 else [])
                if found:
                    positive_text = found[0]
                else:
                    problems.append(f"--positive '{positive}' is not a value of target column '{target_col}' "
                                    f"(values: '{values[0]}', '{values[1]}')")  # fmt: skip
            favourable_text = next((v for v in values if v != positive_text), "")

    # feature columns: constant, id or free text
    for header, column in columns.items():
        if header == target_col or column.values is None:
            continue
        distinct = column.values.nunique()
        if distinct == 1:
            problems.append(f"column '{header}' is constant (every row is '{column.text.iloc[0]}'): it carries no "
                            "information, drop it")  # fmt: skip
        elif column.dtype == "string" and (distinct > MAX_CATEGORIES or distinct > len(frame) / 2):
            problems.append(f"column '{header}' looks like an id or free text ({distinct} distinct values in "
                            f"{len(frame)} rows; a category has at most {MAX_CATEGORIES} and repeats): drop it, "
                            "or name it with --entity if it identifies the subject")  # fmt: skip
    inputs = [h for h in columns if h not in roles]
    if not inputs:
        problems.append(
            "no column is left as a model input (every column is the target, entity, timestamp or protected)"
        )

    # months and ids
    month_of_row: pd.Series | None = None
    event_time: pd.Series | None = None
    if time_col is None:
        month_of_row = pd.Series(spread_months(len(frame), start_month), index=frame.index)
        starts = {m: month_bounds(m)[0] for m in set(month_of_row)}
        event_time = month_of_row.map(starts).astype(TIMESTAMP_DTYPE)
    elif frame[time_col].notna().all():
        text = frame[time_col]
        iso = text.str.match(_ISO_8601)
        parsed = pd.to_datetime(text.where(iso), utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            problems.append(f"timestamp column '{time_col}': {int(bad.sum())} value(s) are not ISO 8601 dates or "
                            f"date-times ({_lines(frame.index[bad])}; e.g. '{text.iloc[first]}')")  # fmt: skip
        else:
            event_time = parsed.astype(TIMESTAMP_DTYPE)
            month_of_row = event_time.dt.strftime("%Y-%m")
            present = set(month_of_row)
            gaps = [m for m in months_between(min(present), max(present)) if m not in present]
            if gaps:
                problems.append(f"timestamp column '{time_col}' leaves month(s) without rows: {', '.join(gaps)} (the "
                                "pipeline runs month by month; import a span of consecutive months)")  # fmt: skip
    ids = frame[entity_col].astype(object) if entity_col else pd.Series(row_ids(len(frame)), index=frame.index)
    if entity_col and month_of_row is not None and ids.notna().all():
        repeated = pd.DataFrame({"id": ids, "month": month_of_row}).duplicated(keep=False)
        if repeated.any():
            pairs = sorted({(str(i), str(m)) for i, m in zip(ids[repeated], month_of_row[repeated], strict=True)})
            shown = ", ".join(f"'{i}' in {m}" for i, m in pairs[:5]) + (
                f" and {len(pairs) - 5} more" if len(pairs) > 5 else ""
            )
            problems.append(f"entity column '{entity_col}': {len(pairs)} id(s) appear more than once in the same "
                            f"month ({shown}; {_lines(frame.index[repeated])}): one row per subject and month")  # fmt: skip
    if problems:
        raise DatasetError(source, problems)
    assert target_col is not None and month_of_row is not None and event_time is not None

    # the config
    template = load_usecase_file(TEMPLATE_USECASE)
    label = feature_name(target_col)
    protected_set = set(protected_cols)
    tags = {"personal_data": True, "legal_basis": legal_basis, "retention_months": retention_months}
    protected_tags = {"personal_data": True, "protected": True, "legal_basis": protected_legal_basis,
                      "retention_months": retention_months}  # fmt: skip
    views = {"inputs": f"{name}_inputs", "protected": f"{name}_protected", "outcomes": f"{name}_outcomes"}
    features: list[dict[str, Any]] = []
    reports: list[ColumnReport] = []
    if entity_col:
        reports.append(ColumnReport(entity_col, key, "entity", "string", "the subject's id"))
    else:
        reports.append(ColumnReport("(none)", key, "entity", "string", "generated: R + row number, file order"))
    if time_col:
        reports.append(ColumnReport(time_col, EVENT_TIMESTAMP, "timestamp", "time", "ISO 8601, month = its month"))
    else:
        reports.append(ColumnReport("(none)", EVENT_TIMESTAMP, "timestamp", "time",
                                    f"generated: file order over {len(set(month_of_row))} months from {start_month}"))  # fmt: skip
    protected_attributes = []
    group_labels: dict[str, pd.Series] = {}
    for header in [*inputs, *protected_cols]:
        column = columns[header]
        series = column.values
        assert series is not None
        spec: dict[str, Any] = {"name": column.name, "dtype": column.dtype}
        is_protected = header in protected_set
        spec["view"] = views["protected" if is_protected else "inputs"]
        rule = column.rule
        if column.dtype == "string":
            spec["allowed"] = sorted(series.unique())
        elif (series >= 0).all():
            spec["min"] = 0
            rule += ", min 0"
        kind: Literal["protected", "model input"] = "protected" if is_protected else "model input"
        spec["description"] = f"Column '{header}' of {csv_path.name} ({kind}, {column.dtype}: {column.rule})."
        spec["tags"] = dict(protected_tags if is_protected else tags)
        features.append(spec)
        if is_protected:
            groups, reference, group_labels[header] = _groups(column)
            protected_attributes.append({"feature": column.name, "reference": reference, "groups": groups})
            rule += f"; groups {', '.join(groups)} (reference {reference})"
        reports.append(ColumnReport(header, column.name, kind, column.dtype, rule))
    features.append({
        "name": label, "view": views["outcomes"], "dtype": "int", "min": 0, "max": 1,
        "description": f"Observed outcome '{target_col}': 1 when it was '{positive_text}', 0 when '{favourable_text}' (the label).",
        "tags": dict(tags),
    })  # fmt: skip
    reports.append(ColumnReport(target_col, label, "label", "int", f"1 = '{positive_text}', 0 = '{favourable_text}'"))
    input_names = [columns[h].name for h in inputs]
    protected_names = [columns[h].name for h in protected_cols]
    document: dict[str, Any] = {
        "name": name,
        "description": description
        or f"Binary decisions from {csv_path.name}: the model scores the probability that '{target_col}' is "
        f"'{positive_text}' (the adverse outcome); a subject is declined when it reaches the decision threshold. "
        "Imported with `fairway usecase init`: replace this text with the intended purpose.",
        "owner": owner,
        "model_name": name.replace("_", "-"),
        "start_month": min(month_of_row),
        "entity": {
            "name": "subject",
            "join_key": key,
            "description": f"One subject of the decisions: {f'column {entity_col!r}' if entity_col else 'one row'} of {csv_path.name}.",
            "tags": dict(tags),
        },  # fmt: skip
        "event_timestamp": EVENT_TIMESTAMP,
        "label": {
            "feature": label,
            "description": f"1 when '{target_col}' was '{positive_text}' (the adverse outcome the model scores), "
            f"0 when it was '{favourable_text}'.",
            "positive_value": 1,
            "favourable_value": 0,
            "available_after_months": 1,
            "available_timestamp": LABEL_TIMESTAMP,
        },
        "feature_views": [
            {
                "name": views["inputs"],
                "description": f"Model inputs from {csv_path.name}.",
                "ttl_days": 95,
                "online": True,
            },
            {
                "name": views["protected"],
                "description": "Protected attributes, kept apart and used for fairness evaluation only.",
                "ttl_days": 400,
                "online": False,
            },
            {
                "name": views["outcomes"],
                "description": f"Observed '{target_col}' of a snapshot, delivered one month after it.",
                "ttl_days": 1,
                "online": False,
            },
        ],  # fmt: skip
        "features": features,
        "feature_services": [
            {
                "name": f"{name}_model_v1",
                "purpose": "model_input",
                "description": "Model inputs.",
                "features": input_names,
            },
            {
                "name": "fairness_audit_v1",
                "purpose": "fairness_audit",
                "description": "Protected attributes for fairness evaluation only; never a model input.",
                "features": protected_names,
            },
            {
                "name": f"{name}_labels_v1",
                "purpose": "labels",
                "description": "Observed outcomes for training and monitoring.",
                "features": [label],
            },
        ],  # fmt: skip
        "protected_attributes": protected_attributes,
        "gate": template.gate.model_dump(),
        "drift": template.drift.model_dump(),
        "materialize_overlap_days": 7,
    }
    try:
        uc = parse_usecase(document, source=f"generated config of '{name}'")
    except ConfigError as exc:
        raise DatasetError(source, [f"the generated config is not valid: {exc}"]) from None

    # the raw months
    digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    data = pd.DataFrame({key: ids.astype(str), EVENT_TIMESTAMP: event_time})
    for header in [*inputs, *protected_cols]:
        data[columns[header].name] = columns[header].values
    data[label] = (frame[target_col] == positive_text).astype("int64")
    data["_month"] = month_of_row
    raw = out.raw / name
    if raw.exists():
        shutil.rmtree(raw)
    month_names = sorted(set(month_of_row))
    snapshot_columns = [key, EVENT_TIMESTAMP, *[f.name for f in uc.snapshot_features]]
    label_columns = [key, EVENT_TIMESTAMP, LABEL_TIMESTAMP, label]
    rows_per_month: dict[str, int] = {}
    label_rows = 0
    previous: pd.DataFrame | None = None
    for month in month_names:
        rows = data[data["_month"] == month]
        if previous is None:
            labels = empty_labels(uc)
        else:
            labels = previous.assign(**{LABEL_TIMESTAMP: month_bounds(month)[0]})
            labels[LABEL_TIMESTAMP] = labels[LABEL_TIMESTAMP].astype(TIMESTAMP_DTYPE)
            labels = labels[label_columns]
        folder = out.raw_month(name, month)
        write_parquet_atomic(to_arrow(rows[snapshot_columns].reset_index(drop=True)), folder / SNAPSHOT_FILE)
        write_parquet_atomic(to_arrow(labels.reset_index(drop=True)), folder / LABELS_FILE)
        rows_per_month[month] = len(rows)
        label_rows += len(labels)
        previous = rows[[key, EVENT_TIMESTAMP, label]]
    for month in month_names:
        validate_month(uc, month, out)

    # what the data supports
    notes = []
    if time_col is None:
        notes.append(f"no timestamp column: the rows are spread in file order over {len(month_names)} month(s) from "
                     f"{month_names[0]} (about {len(frame) // len(month_names)} rows a month), so differences between "
                     "months (drift) only reflect the order of the file")  # fmt: skip
    notes.append(f"the outcomes of the last month ({rows_per_month[month_names[-1]]} rows of {month_names[-1]}) would "
                 "be delivered after the data ends and are not imported")  # fmt: skip
    notes.extend(lifecycle(month_names).notes)
    small = [m for m, n in rows_per_month.items() if n < MIN_ROWS_PER_MONTH]
    if small:
        notes.append(f"{len(small)} month(s) hold fewer than {MIN_ROWS_PER_MONTH} rows ({', '.join(small[:6])}"
                     f"{', ...' if len(small) > 6 else ''}): the one-month holdout and the monthly checks rest on "
                     "few rows")  # fmt: skip
    for header in protected_cols:
        per_month = group_labels[header].value_counts() / len(month_names)
        for group, average in per_month.items():
            if average < SMALL_GROUP_ROWS_PER_MONTH:
                notes.append(f"protected group '{group}' of '{header}' has about {average:.0f} rows a month (fewer "
                             f"than {SMALL_GROUP_ROWS_PER_MONTH}): its fairness metrics on a one-month holdout are "
                             "noisy, and a group without both outcomes cannot be measured (the gate then fails)")  # fmt: skip
    for header in inputs:
        for attribute in protected_cols:
            strength = _association(columns[header], group_labels[attribute])
            if strength >= PROXY_ASSOCIATION:
                notes.append(f"model input '{header}' is associated with protected '{attribute}' (strength "
                             f"{strength:.2f}): it can act as a proxy; if it must stay an input, tag it "
                             "proxy_risk: true with a justification in the config (the catalogue check requires one)")  # fmt: skip
        column = columns[header]
        if column.dtype == "int" and column.values is not None and column.values.nunique() == len(frame) >= 20:
            notes.append(f"model input '{header}' has a different value in every row: if it is an identifier, "
                         "drop it from the file or name it with --entity")  # fmt: skip
    positive_rate = float(data[label].mean())
    notes.append(f"'{positive_text}' (the adverse outcome) in {positive_rate:.1%} of the rows")

    config_path = out.home / "usecases" / f"{name}.yaml"
    header_lines = [
        f"# Use case '{name}', written by `fairway usecase init` from {csv_path.name} (sha256 {digest}).",
        f"# Label '{label}': 1 = '{target_col}' was '{positive_text}' (adverse), 0 = '{favourable_text}'.",
        "# Review the descriptions, owner, legal bases and proxy_risk tags before deploying.",
    ]
    text = "\n".join(header_lines) + "\n" + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)
    parse_usecase(yaml.safe_load(text), source=str(config_path))  # what is written reads back the same
    write_atomic(config_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    if force and (out.offline_view(name, views["inputs"]).exists() or out.feast_project(name).exists()):
        notes.append(f"FAIRWAY_HOME still holds the offline store and Feast registry of an earlier import of '{name}' "
                     f"({out.offline / name}, {out.feast_project(name)}): delete them, or use a fresh FAIRWAY_HOME, "
                     "before running the lifecycle again")  # fmt: skip
    return InitResult(
        usecase=uc, config_path=config_path, csv_path=csv_path, raw_dir=raw, csv_sha256=digest, rows=len(frame),
        months=rows_per_month, label_rows=label_rows, positive=positive_text, favourable=favourable_text,
        columns=reports, notes=notes,
    )  # fmt: skip
