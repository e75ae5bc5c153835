"""Bring your own dataset: `fairway usecase init` turns a tabular CSV into a use case and its raw monthly data.

`init_usecase` inspects the file, asks nothing, and either writes FAIRWAY_HOME/usecases/<name>.yaml plus the raw
partitions FAIRWAY_HOME/data/raw/<name>/<YYYY-MM>/{snapshot,labels}.parquet, or raises `DatasetError` naming every
problem it found: a problem never stops the inspection of the rest of the file. It runs these steps, each a
function of its own: `check_settings`, `read_table`, then `inspect` (`assign_roles`, `name_features`, `infer_type`
per column, `check_columns`, `read_label`, `assign_months`, `attribute_options`, `protected_groups` and
`choose_reference` per protected attribute), `usecase_document`, `raw_frame`, `write_raw_months`, `data_notes`
and `write_config`. The rules, in the order they apply:

Reading
  - UTF-8 (a byte-order mark is ignored), comma-separated unless `sep` says otherwise, one header line. Every cell
    is read as text, stripped of surrounding spaces. A cell is missing when it is empty, one of pandas' missing
    markers (NA, N/A, NaN, null, None, ...; the cell as written), or one of the `na_values` markers (the whole
    stripped cell, letter case ignored).
  - a cell that looks like a missing-value marker but was not declared in `na_values` (SUSPECT_MARKERS: ?, -, .,
    unknown, none, missing, na, n.a., ...: the whole stripped cell, letter case ignored) stays a value; the notes
    name the column, the marker and its count.
  - `drop_columns` names columns that are not imported (by header or sanitised name); a name that is not a
    column is a problem, and so is a dropped column that has a role.

Column names
  - Each column becomes a feature named by sanitising its header: lower case, every run of characters other than
    a-z and 0-9 becomes one "_", leading and trailing "_" are dropped, and a name that is empty or starts with a
    digit gets the prefix "c_" ("Loan Amount (EUR)" -> loan_amount_eur, "2nd job" -> c_2nd_job).
  - Names Fairway uses for its own columns (RESERVED: the timestamps, Feast's event_timestamp, the prediction
    record fields such as score and decision) get the suffix "_value" (score -> score_value).
  - a repeated or an empty header is a problem. The inspection goes on: such a column is called
    "<header> (column N)" or "(column N)" (N: its 1-based position) and inspected as a model input, and a role
    naming a repeated header is a problem too. Two headers that end up with the same name are a problem.

Roles
  - target: the label; entity: the id column (optional); timestamp: the time column (optional); protected: the
    protected attributes. Each is named by its header (or its sanitised name) and a column has one role at most.
    Every other column that is not dropped is a model input; at least one is needed.

Types (of every model input and protected attribute, read from its non-missing values)
  - int: every value is a whole number written without a decimal point (-3, 0, 42); a column of whole numbers
    with missing values becomes a float feature (NaN where missing);
  - float: otherwise, every value is a finite number (3.5, 1e3);
  - string (bool-like): every value is true or false in any letter case -> a category with values "false"/"true";
  - string: anything else -> a category whose `allowed` values are the observed values.
  - numbers get bounds (`numeric_bounds`), which the service enforces on every request and ingestion on every
    row: `min: 0` when no value is negative, else minus the power of ten at or above ten times the most
    negative value's size; `max` the power of ten at or above ten times the largest value (at least 10): an
    order of magnitude of room past what the data holds (an age of 95 gives max 1000, an amount of 811,837
    gives 10,000,000), so a value like 1e12 or 1e308 is refused.
  - missing values in a model input are kept: the feature gets `nullable: true`, the raw data holds them as nulls
    (NaN in numbers, None in text), and the model pipeline imputes them. Missing values in the target, the
    entity, the timestamp or a protected attribute are problems (named with their count and first lines): rows
    are never dropped.
  - problems: a column without any value, a column with a single value (constant), a text column with more than
    MAX_CATEGORIES distinct values or with distinct values in more than half of its non-missing rows (an id or
    free text: drop it, or name it as --entity). Rare categories of a wide column are grouped by the model
    pipeline, not here.

Protected attributes
  - tagged `protected: true`, kept in the offline-only view `<name>_protected` read by the `fairness_audit_v1`
    service: used to measure fairness, never a model input.
  - a category gets one group per value (group key: the value in lower case with non-alphanumeric runs turned
    into "_", "_2", "_3"... on a clash). `merge` ({attribute: {group key: [values or group keys]}}) joins groups
    into one group with several `values`; problems: an unknown value, a value in two merges, fewer than two
    values in a merge, a key that is not made of a-z, 0-9 and "_" or that is the key of a group left out of the
    merge, fewer than two groups left, a merge of a number.
  - a number is split at its median X (int columns: rounded up to a whole number; when X is the minimum, the next
    larger value) into `under_X` (values < X, `max: X`) and `X_and_over` (values >= X, `min: X`), as
    fairway.fairness.group_mask reads a range [min, max). X in a group key is written with "." as "_" and "-" as
    "minus_".
  - the reference group is the advantaged group, as fairness toolkits define it: the group with the highest rate
    of the favourable outcome (the target's non-positive value) in the file, judged by the lower end of its 95 %
    Wilson interval (a small group's high rate by chance does not win), among the groups with at least
    SMALL_GROUP_ROWS_PER_MONTH rows a month (all groups when none has as many); ties: the larger group, then the
    first key in sort order. `reference` ({attribute: group key or value}) names another; an attribute that is
    not protected, or a value that is no group's, is a problem.
  - attributes in `merge` and `reference` are named by header, sanitised name or feature name.

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
  - the outcomes of month M's rows are delivered in the labels of month M+N at its first instant, N =
    `outcome_delay_months` (1..MAX_OUTCOME_DELAY, default 1; `label.available_after_months: N`); those of the last
    N months would arrive after the data ends and are not imported.

The config
  - views `<name>_inputs` (online, TTL 95 days), `<name>_protected` (offline, TTL 400 days), `<name>_outcomes`
    (the label); services `<name>_model_v1`, `fairness_audit_v1`, `<name>_labels_v1`; gate and drift settings as
    the built-in credit_risk's (TEMPLATE_USECASE) with `approval_mode: human`; no `synthetic:` section; catalogue
    tags on every field and the entity: personal_data true, `legal_basis` (protected attributes: `protected_legal_basis`),
    `retention_months`; `nullable: true` on model inputs with missing values. The config is validated with
    config.parse_usecase and every imported month with data.validate_month before the YAML file is written.
  - the name must be a lower-case identifier that no built-in use case and no file in $FAIRWAY_USECASES_DIR
    uses; an existing FAIRWAY_HOME/usecases/<name>.yaml is only replaced with `force` (the raw data of the name
    is replaced with it).

What the data supports (`InitResult.notes`): dropped columns; undeclared marker cells; model inputs with missing
values; how many months the lifecycle gets (`lifecycle`, which follows the outcome delay) and which outcomes are
not imported; months with few rows; each protected attribute's reference group and its favourable rates;
protected groups with fewer rows a month than the gate's `min_group_rows` (default SMALL_GROUP_ROWS_PER_MONTH:
the holdout is one month), with a merge to apply (`suggest_merges`: the smallest small group is joined with the
next smallest groups until the joined group reaches the minimum, then the same for the small groups left; the
joined group's key is "other", or "other_2", ... when a group left out is called so); likely proxies of protected
attributes (association >= PROXY_ASSOCIATION); likely leakage: a model input that predicts the target almost
alone (`leakage`: its single-feature AUC >= LEAKAGE_AUC, numbers scoring by their value, categories by their rate
of the positive outcome, AUC taken as max(auc, 1 - auc); or a two-valued input equal to the label, mapped to
0/1 in either direction, in >= LEAKAGE_AGREEMENT of its rows); id-like numeric columns; the positive rate.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
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
MAX_CATEGORIES = 200  # rare categories of a wide column are grouped by the model pipeline
PROXY_ASSOCIATION = 0.5
SMALL_GROUP_ROWS_PER_MONTH = 30  # the gate's min_group_rows when the template has none
LEAKAGE_AUC = 0.95
LEAKAGE_AGREEMENT = 0.95
DEFAULT_OUTCOME_DELAY = 1
MAX_OUTCOME_DELAY = 36
MIN_LABELLED_MONTHS = 2  # snapshot months with known outcomes when training: one to train on, the latest held out
MIN_TRAIN_MONTHS = DEFAULT_OUTCOME_DELAY + MIN_LABELLED_MONTHS  # 3: outcomes delivered one month after their snapshot
DEFAULT_TRAIN_UNTIL = 6
# cells that often stand for a missing value (compared with the stripped cell in lower case)
SUSPECT_MARKERS = frozenset({
    "?", "??", "-", "--", ".", "unknown", "unk", "none", "missing", "na", "n/a", "n.a.", "n.a", "null", "nil",
    "nan", "not available", "not known",
})  # fmt: skip

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
_GROUP_KEY = re.compile(r"^[a-z0-9_]+$")
_INT = r"[+-]?\d+"
_ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_MONTH_COLUMN = "_month"


class DatasetError(ValueError):
    """The file (or the command) cannot become a use case; the message names every problem found, then hints
    (cells that may be missing-value markers) that can explain some of them."""

    def __init__(self, source: str, problems: Sequence[str], hints: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        self.hints = list(hints)
        text = f"{source}: {len(self.problems)} problem(s):\n  - " + "\n  - ".join(self.problems)
        if self.hints:
            text += "\nhints:\n  - " + "\n  - ".join(self.hints)
        super().__init__(text)


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


def parse_reference(text: str) -> tuple[str, str]:
    """`--reference ATTRIBUTE=VALUE` as (attribute, value)."""
    attribute, equals, value = text.partition("=")
    if not equals or not attribute.strip() or not value.strip():
        raise ValueError(f"--reference '{text}' is not ATTRIBUTE=VALUE")
    return attribute.strip(), value.strip()


def parse_merge(text: str) -> tuple[str, str, list[str]]:
    """`--merge ATTRIBUTE=VALUE,VALUE[,...]:GROUP` as (attribute, group key, values)."""
    attribute, equals, rest = text.partition("=")
    listed, colon, key = rest.rpartition(":")
    values = [v.strip() for v in listed.split(",") if v.strip()]
    if not equals or not colon or not attribute.strip() or not key.strip() or len(values) < 2:
        raise ValueError(f"--merge '{text}' is not ATTRIBUTE=VALUE,VALUE[,...]:GROUP (two values at least)")
    return attribute.strip(), key.strip(), values


# --- what the data supports ---------------------------------------------------------------------------------


def min_train_until(outcome_delay_months: int = DEFAULT_OUTCOME_DELAY) -> int:
    """The first month training can end: outcomes of MIN_LABELLED_MONTHS snapshot months must be delivered."""
    return outcome_delay_months + MIN_LABELLED_MONTHS


@dataclass(frozen=True)
class Lifecycle:
    """How `make demo` uses the months: train on labels known at the end of month `train_until` (1-based),
    then score the later months, monitoring each; judged months are scored months whose outcomes arrive,
    `outcome_delay_months` after their snapshot."""

    months: list[str]
    train_until: int
    notes: list[str]
    outcome_delay_months: int = DEFAULT_OUTCOME_DELAY

    @property
    def history(self) -> list[str]:
        return self.months[: self.train_until]

    @property
    def labelled(self) -> list[str]:
        """Snapshot months whose outcomes are delivered by the end of training (the latest is held out)."""
        return self.months[: max(0, self.train_until - self.outcome_delay_months)]

    @property
    def scored(self) -> list[str]:
        return self.months[self.train_until :]

    @property
    def judged(self) -> list[str]:
        """Scored months whose decisions meet their outcomes within the data."""
        return self.scored[: max(0, len(self.scored) - self.outcome_delay_months)]

    @property
    def runnable(self) -> bool:
        return self.train_until >= min_train_until(self.outcome_delay_months) and len(self.scored) >= 1


def _span(months: Sequence[str]) -> str:
    return months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}"


def _months_text(count: int) -> str:
    return "one month" if count == 1 else f"{count} months"


def lifecycle(
    months: Sequence[str], train_until: int | None = None, outcome_delay_months: int = DEFAULT_OUTCOME_DELAY
) -> Lifecycle:
    """The demo's plan for these months, outcomes delivered `outcome_delay_months` (N) after their snapshot: by
    default train until min(5 + N, months - N - 1), at least month N + 2 (N = 1: min(6, months - 2), at least 3)."""
    months = list(months)
    delay = outcome_delay_months
    minimum = min_train_until(delay)
    if train_until is None:
        train_until = max(minimum, min(DEFAULT_TRAIN_UNTIL + delay - 1, len(months) - delay - 1))
    train_until = min(train_until, len(months))
    plan = Lifecycle(months, train_until, [], delay)
    notes = plan.notes
    arrive = f" (outcomes arrive {delay} months after their snapshot)" if delay > 1 else ""
    if len(months) < minimum + 1:
        notes.append(
            f"only {len(months)} month(s): "
            + ("" if delay == 1 else f"with outcomes delivered {delay} months after their snapshot, ")
            + f"training needs {minimum} ("
            + ("outcomes delivered in at least two months" if delay == 1 else "outcomes of two snapshot months")
            + ", the latest held out) and scoring at least one month more: the lifecycle (make demo) cannot run; "
            "import more rows (or a timestamp column spanning more months)"
        )
    elif train_until < minimum:
        notes.append(f"training until month {train_until} is too early: it needs {minimum} months at least{arrive}")
    elif not plan.scored:
        notes.append(f"training until month {train_until} leaves no month to score: nothing is scored or monitored")
    else:
        scored, judged = plan.scored, plan.judged
        notes.append(
            f"make demo trains on outcomes known at the end of {plan.history[-1]} (snapshots "
            f"{_span(plan.labelled)}, the latest held out), then scores {len(scored)} month(s) "
            f"{_span(scored)} and monitors their drift"
        )
        if delay > 1:
            notes.append(
                f"outcomes arrive {delay} months after their snapshot: at the end of {plan.history[-1]} the snapshots "
                f"of {_span(plan.history[len(plan.labelled) :])} have no known outcome yet, and the decisions of a "
                f"scored month are judged {delay} months later"
            )
        if not judged and delay == 1:
            notes.append(
                f"only one month after training ({scored[0]}): its drift is monitored, but no decision meets its "
                "outcome (judging decisions needs a second scored month)"
            )
        elif not judged:
            notes.append(
                f"{len(scored)} month(s) after training ({_span(scored)}): their drift is monitored, but no decision "
                f"meets its outcome within the data (judging decisions needs {delay + 1} scored months)"
            )
        else:
            last = "the last month's" if delay == 1 else f"the last {delay} months'"
            notes.append(
                f"decisions of {len(judged)} month(s) ({_span(judged)}) meet their outcomes {_months_text(delay)} "
                f"later (judged AUC and fairness); {last} are never judged"
            )
    return plan


# --- the result ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnReport:
    source: str
    feature: str
    role: Literal["entity", "timestamp", "label", "protected", "model input", "dropped"]
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
    dropped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each step, in order

    def describe(self) -> str:
        """What was written, how each column was read, and what the data can and cannot support."""
        uc = self.usecase
        width = max(len(c.source) for c in self.columns)
        delay = uc.label.available_after_months
        lines = [
            f"use case '{uc.name}' written to {self.config_path}",
            f"  from {self.csv_path} ({self.rows:,} rows, sha256 {self.csv_sha256[:16]}...)",
            f"  raw data: {len(self.months)} month(s) {next(iter(self.months))}..{next(reversed(self.months))} "
            f"under {self.raw_dir} ({', '.join(f'{m}: {n}' for m, n in self.months.items())}); "
            f"{self.label_rows:,} outcomes delivered" + (f", {delay} months after their snapshot" if delay > 1 else ""),
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


# --- step: the settings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What the command says besides the file and the columns' roles."""

    name: str
    legal_basis: str = "contract"
    protected_legal_basis: str = "legal_obligation"
    retention_months: int = 84
    owner: str = "model-owner"
    description: str | None = None
    start_month: str = DEFAULT_START_MONTH
    outcome_delay_months: int = DEFAULT_OUTCOME_DELAY


def check_settings(settings: Settings, protected: Sequence[str], force: bool, out: Paths) -> list[str]:
    """Problems of the command itself: the name, legal bases, retention, protected columns, months, delay."""
    problems = _check_name(settings.name, force, out)
    for option, basis in (("legal basis", settings.legal_basis),
                          ("protected legal basis", settings.protected_legal_basis)):  # fmt: skip
        if basis not in LEGAL_BASES:
            problems.append(f"{option} '{basis}' is not one of {', '.join(LEGAL_BASES)}")
    if not 0 < settings.retention_months <= 1200:
        problems.append(f"retention of {settings.retention_months} months is not in 1..1200")
    if not protected:
        problems.append("at least one protected column is needed (--protected)")
    if not _MONTH.match(settings.start_month):
        problems.append(f"start month '{settings.start_month}' is not a month in the form YYYY-MM")
    if not 1 <= settings.outcome_delay_months <= MAX_OUTCOME_DELAY:
        problems.append(f"outcome delay of {settings.outcome_delay_months} months is not in 1..{MAX_OUTCOME_DELAY}")
    return problems


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


# --- step: reading ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """The file as text: one column per header position, labelled by its header ("<header> (column N)" or
    "(column N)" when the header is repeated or empty), cells stripped, NaN where missing."""

    path: Path
    frame: pd.DataFrame
    headers: dict[str, str]  # label -> the header as written (stripped)
    unnamed: frozenset[str]  # labels of the columns whose header is repeated or empty
    markers: dict[str, dict[str, int]]  # label -> undeclared marker cell -> count
    na_values: tuple[str, ...]
    problems: list[str]

    @property
    def rows(self) -> int:
        return len(self.frame)


def _lines(index: Iterable[int], limit: int = 5) -> str:
    rows = [int(i) + 2 for i in index]  # line 1 is the header
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"line{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows[:limit]))}{more}"


def _labels(headers: Sequence[str]) -> tuple[list[str], frozenset[str], list[str]]:
    """Unique column labels for the headers, the labels of repeated or empty ones, and their problems."""
    labels: list[str] = []
    unnamed: set[str] = set()
    problems: list[str] = []
    for position, header in enumerate(headers, start=1):
        if not header:
            labels.append(f"(column {position})")
        elif headers.count(header) > 1:
            labels.append(f"{header} (column {position})")
        else:
            labels.append(header)
            continue
        unnamed.add(labels[-1])
    empty = [str(i) for i, h in enumerate(headers, start=1) if not h]
    if len(empty) == 1:
        problems.append(f"column {empty[0]} has no header: name it in the file")
    elif empty:
        problems.append(f"columns {', '.join(empty)} have no header: name them in the file")
    repeated = sorted({h for h in headers if h and headers.count(h) > 1})
    if repeated:
        where = "; ".join(
            f"'{h}' in columns {', '.join(str(i) for i, x in enumerate(headers, start=1) if x == h)}" for h in repeated
        )
        problems.append(f"repeated column header(s): {repeated} ({where}): rename them in the file")
    return labels, frozenset(unnamed), problems


def read_table(csv_path: Path, sep: str = ",", na_values: Sequence[str] = ()) -> Table:
    """Read the file as text (module docstring, Reading). A file that cannot be read at all raises DatasetError;
    repeated and empty headers are problems of the Table, and the columns are read all the same."""
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
    stripped = [h.strip() for h in header]
    labels, unnamed, problems = _labels(stripped)
    markers = tuple(m.strip() for m in na_values if m.strip())
    try:
        frame = pd.read_csv(csv_path, sep=sep, dtype=str, encoding="utf-8-sig", keep_default_na=True,
                            na_values=list(markers))  # fmt: skip
    except (pd.errors.ParserError, ValueError) as exc:
        raise DatasetError(source, [f"cannot be read as CSV (separator {sep!r}): {exc}"]) from None
    if frame.empty:
        raise DatasetError(source, problems + ["the file has a header but no rows"])
    frame.columns = labels
    declared = {m.lower() for m in markers}
    suspects: dict[str, dict[str, int]] = {}
    for label in frame.columns:
        text = frame[label].str.strip()
        text = text.where((text != "") & ~text.str.lower().isin(declared), np.nan)
        frame[label] = text
        looks_missing = text[text.str.lower().isin(SUSPECT_MARKERS)]
        if len(looks_missing):
            suspects[label] = {str(k): int(n) for k, n in looks_missing.value_counts().sort_index().items()}
    headers = dict(zip(labels, stripped, strict=True))
    return Table(csv_path, frame.reset_index(drop=True), headers, unnamed, suspects, markers, problems)


# --- step: roles --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roles:
    """Which column plays which part (labels of Table.frame); `inputs` are every other column not dropped."""

    target: str | None
    entity: str | None
    timestamp: str | None
    protected: list[str]
    dropped: list[str]
    inputs: list[str]
    problems: list[str]

    @property
    def features(self) -> list[str]:
        """The columns that become snapshot features: model inputs, then protected attributes."""
        return [*self.inputs, *self.protected]


def find_column(table: Table, wanted: str, role: str) -> tuple[str | None, list[str]]:
    """The column a role names: its header exactly, else the one whose sanitised name matches."""
    named = [c for c in table.frame.columns if c not in table.unnamed]
    if wanted in named:
        return wanted, []
    repeated = [c for c in table.unnamed if wanted.strip() and table.headers[c] == wanted.strip()]
    if repeated:
        return None, [f"{role} column '{wanted}' is ambiguous: the header is repeated ({', '.join(sorted(repeated))})"]
    matches = [c for c in named if sanitise(c) == sanitise(wanted)]
    if len(matches) == 1:
        return matches[0], []
    return None, [f"{role} column '{wanted}' is not in the file (columns: {', '.join(table.frame.columns)})"]


def assign_roles(
    table: Table,
    target: str,
    protected: Sequence[str],
    entity: str | None = None,
    timestamp: str | None = None,
    drop_columns: Sequence[str] = (),
) -> Roles:
    """Find the target, entity, timestamp, protected and dropped columns; the rest are model inputs."""
    problems: list[str] = []

    def find(wanted: str, role: str) -> str | None:
        column, found = find_column(table, wanted, role)
        problems.extend(found)
        return column

    target_col = find(target, "target")
    entity_col = find(entity, "entity") if entity else None
    time_col = find(timestamp, "timestamp") if timestamp else None
    protected_cols = [c for c in (find(p, "protected") for p in protected) if c]
    dropped = list(dict.fromkeys(c for c in (find(d, "dropped") for d in drop_columns) if c))
    roles: dict[str, str] = {}
    chosen = [("target", target_col), ("entity", entity_col), ("timestamp", time_col)]
    for role, column in chosen + [("protected", c) for c in protected_cols] + [("dropped", c) for c in dropped]:
        if column is None:
            continue
        if column in roles:
            problems.append(f"column '{column}' cannot be both {roles[column]} and {role}")
        roles.setdefault(column, role)
    inputs = [c for c in table.frame.columns if c not in roles]
    if not inputs:
        problems.append(
            "no column is left as a model input (every column is the target, entity, timestamp, protected or dropped)"
        )
    protected_only = [c for c in dict.fromkeys(protected_cols) if roles.get(c) == "protected"]
    dropped_only = [c for c in dropped if roles.get(c) == "dropped"]
    return Roles(target_col, entity_col, time_col, protected_only, dropped_only, inputs, problems)


# --- step: names --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Naming:
    """The entity key and the feature name of each model input, protected attribute and the target."""

    key: str
    features: dict[str, str]
    problems: list[str]


def name_features(table: Table, roles: Roles) -> Naming:
    """Feature names (module docstring, Column names); clashes are problems. Columns with a repeated or empty
    header are left out (their header is already a problem)."""
    problems = []
    left_out = {roles.entity, roles.timestamp, *roles.dropped, *table.unnamed}
    named = [c for c in table.frame.columns if c not in left_out]
    by_name: dict[str, list[str]] = {}
    for header in named:
        by_name.setdefault(feature_name(header), []).append(header)
    for feature, headers in by_name.items():
        if len(headers) > 1:
            problems.append(f"columns {headers} all become the feature name '{feature}': rename them")
    key = feature_name(roles.entity) if roles.entity else ROW_ID
    for header in named:
        if feature_name(header) == key:
            problems.append(f"column '{header}' becomes '{key}', the name of the {'entity' if roles.entity else 'generated id'} column: rename it")  # fmt: skip
    return Naming(key, {h: feature_name(h) for h in named}, problems)


# --- step: types --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnType:
    """A column's type, its rule, and its converted values: int64, float64 (NaN where missing) or object (None
    where missing)."""

    dtype: Literal["int", "float", "string"]
    rule: str
    values: pd.Series
    missing: int

    @property
    def nullable(self) -> bool:
        return self.missing > 0

    @property
    def present(self) -> pd.Series:
        return self.values[self.values.notna()]


def infer_type(text: pd.Series) -> ColumnType | None:
    """The type of a text column from its non-missing values (module docstring, Types); None without any value."""
    present = text.dropna()
    missing = len(text) - len(present)
    if present.empty:
        return None
    with_missing = f", {missing:,} missing" if missing else ""
    if present.str.fullmatch(_INT).all():
        numbers = pd.to_numeric(present, errors="coerce")
        if numbers.notna().all() and pd.api.types.is_integer_dtype(numbers):
            if not missing:
                return ColumnType("int", "whole numbers", numbers.astype("int64"), 0)
            values = pd.to_numeric(text, errors="coerce").astype("float64")
            return ColumnType("float", f"whole numbers{with_missing} -> float", values, missing)
    numbers = pd.to_numeric(text, errors="coerce")
    given = numbers[text.notna()]
    if given.notna().all() and np.isfinite(given.to_numpy(dtype=float)).all():
        return ColumnType("float", f"numbers{with_missing}", numbers.astype("float64"), missing)
    as_text = text.astype(object).where(text.notna(), None)
    lowered = present.str.lower()
    if set(lowered) <= {"true", "false"}:
        values = as_text.map(lambda v: None if v is None else str(v).lower())
        return ColumnType("string", f"true/false -> category{with_missing}", values.astype(object), missing)
    return ColumnType("string", f"text -> category{with_missing}", as_text, missing)


# --- step: checks -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checks:
    """Problems of single columns, and the columns that cannot be imported as they are."""

    problems: list[str]
    failed: frozenset[str]


def check_columns(table: Table, roles: Roles, types: Mapping[str, ColumnType]) -> Checks:
    """Missing values where a value is needed, columns without values, constant columns, ids or free text."""
    problems, failed = [], set()
    needed = [("target", roles.target), ("entity", roles.entity), ("timestamp", roles.timestamp)]
    for role, column in needed + [("protected attribute", c) for c in roles.protected]:
        if column is None:
            continue
        missing = table.frame[column].isna()
        if missing.any():
            failed.add(column)
            problems.append(f"column '{column}': {int(missing.sum())} missing value(s) ({_lines(table.frame.index[missing])}) "
                            f"in the {role}, which needs a value in every row (rows are never dropped): fill them, or "
                            "remove those rows from the file")  # fmt: skip
    for column in roles.features:
        kind = types.get(column)
        if kind is None:
            failed.add(column)
            problems.append(f"column '{column}' has no value (every cell is missing): drop it with --drop-columns")
            continue
        distinct = kind.present.nunique()
        text = table.frame[column].dropna()
        if distinct == 1:
            failed.add(column)
            others = f", the other {kind.missing:,} cells are missing" if kind.missing else ""
            problems.append(f"column '{column}' is constant (every row is '{text.iloc[0]}'{others}): it carries no "
                            "information, drop it")  # fmt: skip
        elif kind.dtype == "string" and (distinct > MAX_CATEGORIES or distinct > len(text) / 2):
            failed.add(column)
            problems.append(f"column '{column}' looks like an id or free text ({distinct} distinct values in "
                            f"{len(text)} rows; a category has at most {MAX_CATEGORIES} and repeats): drop it, "
                            "or name it with --entity if it identifies the subject")  # fmt: skip
    return Checks(problems, frozenset(failed))


# --- step: the label ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """The target's adverse (positive) and favourable values as written, and the label: 1 = positive."""

    positive: str
    favourable: str
    values: pd.Series | None
    problems: list[str]


def read_label(text: pd.Series, header: str, positive: str | None = None) -> Label:
    """The label of a target column without missing values (module docstring, The label)."""
    if text.isna().any():
        return Label("", "", None, [])  # a problem of check_columns
    counts = text.value_counts()
    values = sorted(counts.index)
    if len(values) != 2:
        shown = ", ".join(f"'{v}'" for v in values[:10]) + (", ..." if len(values) > 10 else "")
        return Label(
            "", "", None, [f"target column '{header}' must have exactly two values, found {len(values)}: {shown}"]
        )
    if positive is None:
        try:
            positive_text = default_positive(values, counts.to_dict())
        except ValueError as exc:
            return Label("", "", None, [f"target column '{header}': {exc}"])
    else:
        exact = [v for v in values if v == positive.strip()]
        loose = [v for v in values if v.lower() == positive.strip().lower()]
        found = exact or (loose if len(loose) == 1 else [])
        if not found:
            return Label("", "", None, [f"--positive '{positive}' is not a value of target column '{header}' "
                                        f"(values: '{values[0]}', '{values[1]}')"])  # fmt: skip
        positive_text = found[0]
    favourable_text = next(v for v in values if v != positive_text)
    return Label(positive_text, favourable_text, (text == positive_text).astype("int64"), [])


# --- step: ids and months -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Months:
    """Each row's month ('YYYY-MM'), event time and subject id; None where the file does not allow them."""

    month: pd.Series | None
    event_time: pd.Series | None
    ids: pd.Series
    problems: list[str]

    @property
    def names(self) -> list[str]:
        return [] if self.month is None else sorted(set(self.month))


def assign_months(table: Table, roles: Roles, start_month: str = DEFAULT_START_MONTH) -> Months:
    """Months and ids (module docstring, Ids and months)."""
    frame, problems = table.frame, []
    month: pd.Series | None = None
    event_time: pd.Series | None = None
    time_col, entity_col = roles.timestamp, roles.entity
    if time_col is None:
        if _MONTH.match(start_month):  # else a problem of check_settings
            month = pd.Series(spread_months(len(frame), start_month), index=frame.index)
            starts = {m: month_bounds(m)[0] for m in set(month)}
            event_time = month.map(starts).astype(TIMESTAMP_DTYPE)
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
            month = event_time.dt.strftime("%Y-%m")
            present = set(month)
            gaps = [m for m in months_between(min(present), max(present)) if m not in present]
            if gaps:
                problems.append(f"timestamp column '{time_col}' leaves month(s) without rows: {', '.join(gaps)} (the "
                                "pipeline runs month by month; import a span of consecutive months)")  # fmt: skip
    ids = frame[entity_col].astype(object) if entity_col else pd.Series(row_ids(len(frame)), index=frame.index)
    if entity_col and month is not None and ids.notna().all():
        repeated = pd.DataFrame({"id": ids, "month": month}).duplicated(keep=False)
        if repeated.any():
            pairs = sorted({(str(i), str(m)) for i, m in zip(ids[repeated], month[repeated], strict=True)})
            shown = ", ".join(f"'{i}' in {m}" for i, m in pairs[:5]) + (
                f" and {len(pairs) - 5} more" if len(pairs) > 5 else ""
            )
            problems.append(f"entity column '{entity_col}': {len(pairs)} id(s) appear more than once in the same "
                            f"month ({shown}; {_lines(frame.index[repeated])}): one row per subject and month")  # fmt: skip
    return Months(month, event_time, ids, problems)


# --- step: options of protected attributes ------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeOptions:
    """`reference` and `merge`, keyed by the protected column they name."""

    reference: dict[str, str]
    merge: dict[str, dict[str, list[str]]]
    problems: list[str]


def attribute_options(
    roles: Roles,
    reference: Mapping[str, str] | None = None,
    merge: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> AttributeOptions:
    """Match the attributes that `reference` and `merge` name (header, sanitised name or feature name) to the
    protected columns; any other name is a problem."""
    problems: list[str] = []

    def column(attribute: str, option: str) -> str | None:
        for header in roles.protected:
            if attribute in (header, sanitise(header), feature_name(header)) or sanitise(attribute) == sanitise(header):
                return header
        problems.append(f"{option} names '{attribute}', which is not a protected attribute (protected: "
                        f"{', '.join(roles.protected) or 'none'})")  # fmt: skip
        return None

    references: dict[str, str] = {}
    for attribute, value in (reference or {}).items():
        header = column(attribute, "--reference")
        if header is not None:
            references[header] = value
    merges: dict[str, dict[str, list[str]]] = {}
    for attribute, groups in (merge or {}).items():
        header = column(attribute, "--merge")
        if header is not None:
            for key, values in groups.items():
                merges.setdefault(header, {}).setdefault(key, []).extend(values)
    return AttributeOptions(references, merges, problems)


# --- step: groups of a protected attribute ------------------------------------------------------------------


@dataclass(frozen=True)
class Grouping:
    """A protected attribute's groups as written in the config, and each row's group key."""

    groups: dict[str, dict[str, Any]]
    keys: pd.Series
    numeric: bool
    problems: list[str]

    @property
    def sizes(self) -> dict[str, int]:
        counts = self.keys.value_counts()
        return {g: int(counts.get(g, 0)) for g in self.groups}


def _group_key(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_") or "group"


def _number_key(value: float) -> str:
    return f"{value:g}".replace("+", "").replace("-", "minus_").replace(".", "_")


def _unique_key(base: str, taken: Iterable[str]) -> str:
    taken = set(taken)
    key, suffix = base, 2
    while key in taken:
        key, suffix = f"{base}_{suffix}", suffix + 1
    return key


def protected_groups(header: str, column: ColumnType, merge: Mapping[str, Sequence[str]] | None = None) -> Grouping:
    """Groups of a protected attribute (module docstring, Protected attributes), `merge` applied."""
    values = column.values
    if column.dtype != "string":
        refused = [f"--merge {header}: '{header}' is a number split into two groups at its median; only the "
                   "groups of a category can be merged"] if merge else []  # fmt: skip
        return _split(column, refused)
    keys: dict[str, str] = {}
    for value in sorted(values.unique()):
        keys[value] = _unique_key(_group_key(value), keys.values())
    by_key = {k: v for v, k in keys.items()}
    problems: list[str] = []
    into: dict[str, str] = {}  # value -> the key of the group it is merged into
    shown = ", ".join(f"'{v}'" for v in keys)
    for new_key, members in (merge or {}).items():
        if not _GROUP_KEY.match(new_key):
            problems.append(f"--merge {header}: group key '{new_key}' must be made of a-z, 0-9 and _")
        joined, unknown = set(), False
        for member in members:
            value = member if member in keys else by_key.get(member)
            if value is None:
                unknown = True
                problems.append(f"--merge {header}: '{member}' is neither a value nor a group of '{header}' "
                                f"(values: {shown})")  # fmt: skip
            elif into.get(value, new_key) != new_key:
                problems.append(f"--merge {header}: value '{value}' is in two merges ('{into[value]}' and '{new_key}')")
            else:
                into[value] = new_key
                joined.add(value)
        if len(joined) < 2 and not unknown:
            problems.append(f"--merge {header}: '{new_key}' must join two groups at least")
    for value, key in keys.items():
        if value not in into and key in set(into.values()):
            problems.append(f"--merge {header}: group key '{key}' is the key of value '{value}', which the merge "
                            "leaves out: choose another key")  # fmt: skip
    final = {v: into.get(v, k) for v, k in keys.items()}
    groups: dict[str, dict[str, Any]] = {}
    for value in keys:
        groups.setdefault(final[value], {"values": []})["values"].append(value)
    if len(groups) < 2 and not problems:
        problems.append(f"--merge {header}: the merges leave one group; fairness is measured between two at least")
    return Grouping(groups, values.map(final), False, problems)


def _split(column: ColumnType, problems: list[str]) -> Grouping:
    values = column.values
    numbers = values.to_numpy(dtype=float)
    split = float(np.median(numbers))
    if column.dtype == "int":
        split = float(math.ceil(split))
    if not (numbers < split).any():
        split = float(numbers[numbers > numbers.min()].min())
    bound: float | int = int(split) if column.dtype == "int" or split.is_integer() else split
    under, over = f"under_{_number_key(split)}", f"{_number_key(split)}_and_over"
    keys = pd.Series(np.where(numbers >= split, over, under), index=values.index)
    return Grouping({under: {"max": bound}, over: {"min": bound}}, keys, True, problems)


@dataclass(frozen=True)
class Reference:
    """The reference group of a protected attribute and the favourable-outcome rate of every group."""

    key: str
    rates: dict[str, float]
    named: bool  # chosen with `reference`
    problems: list[str]


def wilson_lower(rate: float, rows: int, z: float = 1.959964) -> float:
    """The lower end of the Wilson score interval of a proportion `rate` observed in `rows` rows (95 %)."""
    centre = rate + z * z / (2 * rows)
    spread = z * math.sqrt(rate * (1 - rate) / rows + z * z / (4 * rows * rows))
    return (centre - spread) / (1 + z * z / rows)


def choose_reference(
    header: str,
    grouping: Grouping,
    favourable: pd.Series | None,
    chosen: str | None = None,
    min_rows: int = 0,
) -> Reference:
    """The group with the highest favourable-outcome rate, judged by the lower end of its 95 % Wilson interval
    (so that a small group's rate by chance does not win), among the groups of at least `min_rows` rows (all
    groups when none is that large; ties: the larger, then the first key in sort order), or the group `chosen`
    names by key or by value. `favourable`: True where the row's outcome is favourable (None when the label
    cannot be read: no rates)."""
    sizes = grouping.sizes
    rates: dict[str, float] = {}
    best = ""
    if favourable is not None:
        counts = favourable.groupby(grouping.keys).sum()
        rates = {g: int(counts.get(g, 0)) / n for g, n in sizes.items() if n}
        large = [g for g in rates if sizes[g] >= min_rows] or list(rates)
        best = min(large, key=lambda g: (-round(wilson_lower(rates[g], sizes[g]), 12), -sizes[g], g))
    if chosen is None:
        return Reference(best, rates, False, [])
    key = _group_of(grouping, chosen)
    if key is None:
        return Reference(best, rates, False, [f"--reference {header}={chosen}: '{chosen}' is neither a group nor a "
                                              f"value of '{header}' (groups: {', '.join(grouping.groups)})"])  # fmt: skip
    return Reference(key, rates, True, [])


def _group_of(grouping: Grouping, chosen: str) -> str | None:
    """The group a `reference` value names: a group key, else a value of a group (a number: the range holding it)."""
    if chosen in grouping.groups:
        return chosen
    for key, spec in grouping.groups.items():
        if "values" in spec and chosen in spec["values"]:
            return key
    number = _number(chosen)
    if grouping.numeric and number is not None:
        for key, spec in grouping.groups.items():
            if spec.get("min", -math.inf) <= number < spec.get("max", math.inf):
                return key
    return None


# --- the inspection -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inspection:
    """Everything `inspect` found out about a file; `problems` lists what keeps it from becoming a use case."""

    table: Table
    roles: Roles
    naming: Naming
    types: dict[str, ColumnType]
    checks: Checks
    label: Label
    months: Months
    options: AttributeOptions
    groupings: dict[str, Grouping]
    references: dict[str, Reference]

    @property
    def problems(self) -> list[str]:
        found = [*self.table.problems, *self.roles.problems, *self.naming.problems, *self.checks.problems,
                 *self.label.problems, *self.months.problems, *self.options.problems]  # fmt: skip
        for header, grouping in self.groupings.items():
            found += grouping.problems + self.references[header].problems
        return found


def inspect(
    table: Table,
    target: str,
    protected: Sequence[str],
    entity: str | None = None,
    timestamp: str | None = None,
    positive: str | None = None,
    *,
    drop_columns: Sequence[str] = (),
    reference: Mapping[str, str] | None = None,
    merge: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    start_month: str = DEFAULT_START_MONTH,
) -> Inspection:
    """Roles, names, types, checks, label, months and protected groups of a read file."""
    roles = assign_roles(table, target, protected, entity, timestamp, drop_columns)
    naming = name_features(table, roles)
    types = {c: kind for c in roles.features if (kind := infer_type(table.frame[c])) is not None}
    checks = check_columns(table, roles, types)
    label = read_label(table.frame[roles.target], roles.target, positive) if roles.target else Label("", "", None, [])
    months = assign_months(table, roles, start_month)
    options = attribute_options(roles, reference, merge)
    favourable = None if label.values is None else label.values == 0
    groupings, references = {}, {}
    for header in roles.protected:
        if header in types and header not in checks.failed:
            groupings[header] = protected_groups(header, types[header], options.merge.get(header))
            references[header] = choose_reference(header, groupings[header], favourable, options.reference.get(header),
                                                  SMALL_GROUP_ROWS_PER_MONTH * max(1, len(months.names)))  # fmt: skip
    return Inspection(table, roles, naming, types, checks, label, months, options, groupings, references)


# --- step: the config ---------------------------------------------------------------------------------------


def numeric_bounds(values: Any) -> dict[str, float | int]:
    """`min` and `max` of a number feature from its observed values: 0 when none is negative, else -10**k for the
    least k with 10**k >= 10 * |lowest|; 10**k for the least k with 10**k >= 10 * highest (at least 10)."""

    def power_of_ten(size: float) -> float | int:  # 10**k >= 10 * size, k in [1, 308] (size finite)
        k = min(308, max(1, math.ceil(1 + math.log10(size)))) if size > 0 else 1
        return 10**k if k <= 15 else float(f"1e{k}")

    lowest, highest = float(values.min()), float(values.max())
    return {"min": 0 if lowest >= 0 else -power_of_ten(-lowest), "max": power_of_ten(highest)}


def usecase_document(inspection: Inspection, settings: Settings, template: UseCase) -> dict[str, Any]:
    """The use case as the YAML document to write (module docstring, The config)."""
    table, roles, naming, label = inspection.table, inspection.roles, inspection.naming, inspection.label
    assert roles.target is not None and inspection.months.month is not None
    name, file = settings.name, table.path.name
    tags = {"personal_data": True, "legal_basis": settings.legal_basis, "retention_months": settings.retention_months}
    protected_tags = {"personal_data": True, "protected": True, "legal_basis": settings.protected_legal_basis,
                      "retention_months": settings.retention_months}  # fmt: skip
    views = {"inputs": f"{name}_inputs", "protected": f"{name}_protected", "outcomes": f"{name}_outcomes"}
    features: list[dict[str, Any]] = []
    for header in roles.features:
        kind = inspection.types[header]
        is_protected = header in roles.protected
        spec: dict[str, Any] = {"name": naming.features[header], "dtype": kind.dtype}
        spec["view"] = views["protected" if is_protected else "inputs"]
        if kind.dtype == "string":
            spec["allowed"] = sorted(kind.present.unique())
        else:
            spec.update(numeric_bounds(kind.present))
        if kind.nullable:
            spec["nullable"] = True
        what = "protected" if is_protected else "model input"
        spec["description"] = f"Column '{header}' of {file} ({what}, {kind.dtype}: {kind.rule})."
        spec["tags"] = dict(protected_tags if is_protected else tags)
        features.append(spec)
    target, feature = roles.target, naming.features[roles.target]
    positive, favourable = label.positive, label.favourable
    delay = settings.outcome_delay_months
    features.append({
        "name": feature, "view": views["outcomes"], "dtype": "int", "min": 0, "max": 1,
        "description": f"Observed outcome '{target}': 1 when it was '{positive}', 0 when '{favourable}' (the label).",
        "tags": dict(tags),
    })  # fmt: skip
    protected_attributes = [
        {"feature": naming.features[h], "reference": inspection.references[h].key, "groups": inspection.groupings[h].groups}
        for h in roles.protected
    ]  # fmt: skip
    entity = f"column {roles.entity!r}" if roles.entity else "one row"
    return {
        "name": name,
        "description": settings.description
        or f"Binary decisions from {file}: the model scores the probability that '{target}' is "
        f"'{positive}' (the adverse outcome); a subject is declined when it reaches the decision threshold. "
        "Imported with `fairway usecase init`: replace this text with the intended purpose.",
        "owner": settings.owner,
        "model_name": name.replace("_", "-"),
        "start_month": inspection.months.names[0],
        "entity": {
            "name": "subject",
            "join_key": naming.key,
            "description": f"One subject of the decisions: {entity} of {file}.",
            "tags": dict(tags),
        },  # fmt: skip
        "event_timestamp": EVENT_TIMESTAMP,
        "label": {
            "feature": feature,
            "description": f"1 when '{target}' was '{positive}' (the adverse outcome the model scores), "
            f"0 when it was '{favourable}'.",
            "positive_value": 1,
            "favourable_value": 0,
            "available_after_months": delay,
            "available_timestamp": LABEL_TIMESTAMP,
        },
        "feature_views": [
            {"name": views["inputs"], "description": f"Model inputs from {file}.", "ttl_days": 95, "online": True},
            {
                "name": views["protected"],
                "description": "Protected attributes, kept apart and used for fairness evaluation only.",
                "ttl_days": 400,
                "online": False,
            },
            {
                "name": views["outcomes"],
                "description": f"Observed '{target}' of a snapshot, delivered {_months_text(delay)} after it.",
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
                "features": [naming.features[h] for h in roles.inputs],
            },
            {
                "name": "fairness_audit_v1",
                "purpose": "fairness_audit",
                "description": "Protected attributes for fairness evaluation only; never a model input.",
                "features": [naming.features[h] for h in roles.protected],
            },
            {
                "name": f"{name}_labels_v1",
                "purpose": "labels",
                "description": "Observed outcomes for training and monitoring.",
                "features": [feature],
            },
        ],  # fmt: skip
        "protected_attributes": protected_attributes,
        "gate": template.gate.model_dump(),
        "drift": template.drift.model_dump(),
        "materialize_overlap_days": 7,
    }


def column_reports(inspection: Inspection, settings: Settings) -> list[ColumnReport]:
    """How each column was read, in the order of the table `describe` prints."""
    roles, naming, months = inspection.roles, inspection.naming, inspection.months
    reports = []
    if roles.entity:
        reports.append(ColumnReport(roles.entity, naming.key, "entity", "string", "the subject's id"))
    else:
        reports.append(ColumnReport("(none)", naming.key, "entity", "string", "generated: R + row number, file order"))
    if roles.timestamp:
        reports.append(
            ColumnReport(roles.timestamp, EVENT_TIMESTAMP, "timestamp", "time", "ISO 8601, month = its month")
        )
    else:
        reports.append(ColumnReport("(none)", EVENT_TIMESTAMP, "timestamp", "time",
                                    f"generated: file order over {len(months.names)} months from {settings.start_month}"))  # fmt: skip
    for header in roles.features:
        kind = inspection.types[header]
        rule = kind.rule
        if kind.dtype != "string" and (kind.present >= 0).all():
            rule += ", min 0"
        if kind.nullable:
            rule += ", nullable"
        role: Literal["protected", "model input"] = "protected" if header in roles.protected else "model input"
        if header in roles.protected:
            reference = inspection.references[header]
            how = "named" if reference.named else "highest favourable rate"
            rule += f"; groups {', '.join(inspection.groupings[header].groups)} (reference {reference.key}: {how})"
        reports.append(ColumnReport(header, naming.features[header], role, kind.dtype, rule))
    assert roles.target is not None
    label = inspection.label
    reports.append(ColumnReport(roles.target, naming.features[roles.target], "label", "int",
                                f"1 = '{label.positive}', 0 = '{label.favourable}'"))  # fmt: skip
    reports += [ColumnReport(h, "-", "dropped", "-", "not imported (--drop-columns)") for h in roles.dropped]
    return reports


# --- step: the raw months -----------------------------------------------------------------------------------


def raw_frame(inspection: Inspection, uc: UseCase) -> pd.DataFrame:
    """Every row as the raw data holds it: key, event time, snapshot features, the label, and its month."""
    months, naming = inspection.months, inspection.naming
    assert months.month is not None and months.event_time is not None and inspection.label.values is not None
    data = pd.DataFrame({naming.key: months.ids.astype(str), EVENT_TIMESTAMP: months.event_time})
    for header in inspection.roles.features:
        data[naming.features[header]] = inspection.types[header].values
    data[uc.label.feature] = inspection.label.values
    data[_MONTH_COLUMN] = months.month
    return data


@dataclass(frozen=True)
class RawMonths:
    """What `write_raw_months` wrote: rows per month, outcomes delivered, and the months whose outcomes fall
    after the data (not imported)."""

    directory: Path
    rows: dict[str, int]
    label_rows: int
    unlabelled: list[str]


def write_raw_months(uc: UseCase, data: pd.DataFrame, out: Paths) -> RawMonths:
    """Replace the raw data of the use case: each month's snapshot, and the labels delivered in it (the outcomes
    of the snapshot `label.available_after_months` earlier, at the month's first instant); then validate every
    month with data.validate_month."""
    delay = uc.label.available_after_months
    key = uc.entity.join_key
    raw = out.raw / uc.name
    if raw.exists():
        shutil.rmtree(raw)
    names = sorted(set(data[_MONTH_COLUMN]))
    snapshot_columns = [key, EVENT_TIMESTAMP, *[f.name for f in uc.snapshot_features]]
    label_columns = [key, EVENT_TIMESTAMP, LABEL_TIMESTAMP, uc.label.feature]
    # one schema for every month: a text column whose values are all missing in a month stays a string column
    schema = pa.Schema.from_pandas(data[snapshot_columns], preserve_index=False)
    rows: dict[str, int] = {}
    label_rows = 0
    for index, month in enumerate(names):
        snapshot = data[data[_MONTH_COLUMN] == month][snapshot_columns].reset_index(drop=True)
        if index < delay:
            labels = empty_labels(uc)
        else:
            labels = data[data[_MONTH_COLUMN] == names[index - delay]]
            labels = labels.assign(**{LABEL_TIMESTAMP: month_bounds(month)[0]})
            labels[LABEL_TIMESTAMP] = labels[LABEL_TIMESTAMP].astype(TIMESTAMP_DTYPE)
            labels = labels[label_columns]
        folder = out.raw_month(uc.name, month)
        write_parquet_atomic(
            pa.Table.from_pandas(snapshot, schema=schema, preserve_index=False), folder / SNAPSHOT_FILE
        )
        write_parquet_atomic(to_arrow(labels.reset_index(drop=True)), folder / LABELS_FILE)
        rows[month] = len(snapshot)
        label_rows += len(labels)
    for month in names:
        validate_month(uc, month, out)
    return RawMonths(raw, rows, label_rows, names[max(0, len(names) - delay) :])


# --- step: notes --------------------------------------------------------------------------------------------


def marker_notes(table: Table, columns: Iterable[str] | None = None) -> list[str]:
    """Cells that look like missing-value markers but were not declared in `na_values`."""
    notes = []
    for column in table.frame.columns if columns is None else columns:
        found = table.markers.get(column)
        if not found:
            continue
        cells = " and ".join(f"{n:,} cell{'s' if n > 1 else ''} '{m}'" for m, n in found.items())
        declared = ",".join([*table.na_values, *found])
        notes.append(f"column '{column}' has {cells}: pass --na-values '{declared}' if they mean missing")
    return notes


def column_notes(inspection: Inspection) -> list[str]:
    """Dropped columns, model inputs with missing values, int inputs with a value per row (possible ids)."""
    roles, types, rows = inspection.roles, inspection.types, inspection.table.rows
    notes = []
    if roles.dropped:
        notes.append(f"dropped at import (--drop-columns): {', '.join(repr(h) for h in roles.dropped)}")
    gaps = [h for h in roles.inputs if types[h].nullable]
    if gaps:
        listed = ", ".join(f"'{h}' {types[h].missing:,} ({types[h].missing / rows:.1%})" for h in gaps)
        notes.append(f"model inputs with missing values, kept as nulls (nullable: true) and imputed by the model "
                     f"pipeline (numbers: the median and a missing indicator; categories: a 'missing' level): {listed}")  # fmt: skip
    for header in roles.inputs:
        kind = types[header]
        if kind.dtype == "int" and kind.values.nunique() == rows >= 20:
            notes.append(f"model input '{header}' has a different value in every row: if it is an identifier, "
                         "drop it with --drop-columns or name it with --entity")  # fmt: skip
    return notes


def month_notes(inspection: Inspection, raw: RawMonths, delay: int) -> list[str]:
    """Months made up from the file's order, outcomes not imported, the lifecycle plan, months with few rows."""
    names, notes = list(raw.rows), []
    if inspection.roles.timestamp is None:
        notes.append(f"no timestamp column: the rows are spread in file order over {len(names)} month(s) from "
                     f"{names[0]} (about {inspection.table.rows // len(names)} rows a month), so differences between "
                     "months (drift) only reflect the order of the file")  # fmt: skip
    unlabelled = sum(raw.rows[m] for m in raw.unlabelled)
    if delay == 1:
        notes.append(f"the outcomes of the last month ({unlabelled} rows of {names[-1]}) would be delivered after the "
                     "data ends and are not imported")  # fmt: skip
    elif len(raw.unlabelled) == len(names):
        notes.append(f"no outcome is imported: outcomes are delivered {delay} months after their snapshot "
                     f"(label.available_after_months: {delay}) and the data spans {len(names)} month(s)")  # fmt: skip
    else:
        notes.append(f"outcomes are delivered {delay} months after their snapshot (label.available_after_months: "
                     f"{delay}): those of {names[0]} arrive in the labels of {names[delay]}; the outcomes of the last "
                     f"{len(raw.unlabelled)} months ({unlabelled:,} rows of {_span(raw.unlabelled)}) would be "
                     "delivered after the data ends and are not imported")  # fmt: skip
    notes.extend(lifecycle(names, outcome_delay_months=delay).notes)
    small = [m for m, n in raw.rows.items() if n < MIN_ROWS_PER_MONTH]
    if small:
        notes.append(f"{len(small)} month(s) hold fewer than {MIN_ROWS_PER_MONTH} rows ({', '.join(small[:6])}"
                     f"{', ...' if len(small) > 6 else ''}): the one-month holdout and the monthly checks rest on "
                     "few rows")  # fmt: skip
    return notes


def suggest_merges(sizes: Mapping[str, float], minimum: float) -> list[list[str]] | None:
    """Groups to join so that each reaches `minimum` (sizes: rows a month per group key): the smallest group under
    it is joined with the next smallest groups until the joined group reaches it, then the same for the small
    groups left. None when that would leave fewer than two groups."""
    left = sorted(sizes, key=lambda g: (sizes[g], g))
    merges = []
    while left and sizes[left[0]] < minimum:
        bucket = [left.pop(0)]
        while left and sum(sizes[g] for g in bucket) < minimum:
            bucket.append(left.pop(0))
        merges.append(bucket)
        left = sorted(left, key=lambda g: (sizes[g], g))
    return merges if len(merges) + len(left) >= 2 else None


def group_notes(inspection: Inspection, months: int, min_group_rows: int) -> list[str]:
    """Each reference group with the favourable rates, small groups, and the merges that make them large enough."""
    notes = []
    favourable = inspection.label.favourable
    for header, grouping in inspection.groupings.items():
        reference = inspection.references[header]
        attribute = inspection.naming.features[header]
        others = "; ".join(f"{g} {r:.1%}" for g, r in reference.rates.items() if g != reference.key)
        why = "named with --reference" if reference.named else "the highest rate"
        notes.append(f"protected '{header}': reference group '{reference.key}' ({why}: {reference.rates[reference.key]:.1%} "
                     f"'{favourable}'; {others}); --reference {attribute}=GROUP chooses another")  # fmt: skip
        per_month = {g: n / months for g, n in grouping.sizes.items()}
        small = [g for g, average in per_month.items() if average < min_group_rows]
        for group in small:
            notes.append(f"protected group '{group}' of '{header}' has about {per_month[group]:.0f} rows a month (fewer "
                         f"than {min_group_rows}): its fairness metrics on a one-month holdout are "
                         "noisy; a holdout group under gate.min_group_rows or without both outcomes is not assessed by the gate")  # fmt: skip
        if not small or grouping.numeric:
            continue
        merges = suggest_merges(per_month, min_group_rows)
        if merges is None:
            notes.append(f"the small groups of '{header}' cannot be merged: it would be left with one group")
            continue
        for bucket in merges:
            values = [v for g in bucket for v in grouping.groups[g]["values"]]
            key = _unique_key("other", (g for g in grouping.groups if g not in bucket))
            shown = yaml.safe_dump({key: {"values": values}}, default_flow_style=True, width=10_000).strip()
            average = sum(per_month[g] for g in bucket)
            notes.append(f"to measure '{header}' on larger groups, merge {', '.join(bucket)} (about {average:.0f} rows "
                         f"a month): --merge '{attribute}={','.join(values)}:{key}' (in the config: groups: {shown})")  # fmt: skip
    return notes


def _association(values: pd.Series, dtype: str, groups: pd.Series) -> float:
    """Cramér's V (category) or the correlation ratio (number) between a model input and a protected
    attribute's groups, over the rows where the input has a value: 0 = unrelated, 1 = the input determines the
    group (or the group the input)."""
    present = values.notna()
    values, groups = values[present], groups[present]
    if dtype == "string":
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


def proxy_notes(inspection: Inspection) -> list[str]:
    """Model inputs associated with a protected attribute (association >= PROXY_ASSOCIATION)."""
    notes = []
    for header in inspection.roles.inputs:
        kind = inspection.types[header]
        for attribute, grouping in inspection.groupings.items():
            strength = _association(kind.values, kind.dtype, grouping.keys)
            if strength >= PROXY_ASSOCIATION:
                notes.append(f"model input '{header}' is associated with protected '{attribute}' (strength "
                             f"{strength:.2f}): it can act as a proxy; if it must stay an input, tag it "
                             "proxy_risk: true with a justification in the config (the catalogue check requires one)")  # fmt: skip
    return notes


def single_feature_auc(score: pd.Series, label: pd.Series) -> float:
    """The AUC of `score` for the 0/1 `label` (ties count half), as max(auc, 1 - auc); 0.5 with one class."""
    positives = int(label.sum())
    negatives = len(label) - positives
    if not positives or not negatives:
        return 0.5
    ranks = score.rank(method="average").to_numpy()
    auc = (float(ranks[label.to_numpy() == 1].sum()) - positives * (positives + 1) / 2) / (positives * negatives)
    return max(auc, 1 - auc)


def leakage(kind: ColumnType, label: pd.Series) -> dict[str, float]:
    """How well a model input alone predicts the label, over its rows with a value: `auc` (numbers score by their
    value, categories by their rate of the positive outcome) and, for a two-valued input, `agreement` (the share
    of rows where the input, mapped to 0/1 in the direction that fits better, equals the label)."""
    present = kind.values.notna()
    values, y = kind.values[present], label[present]
    if kind.dtype == "string":
        score = y.groupby(values).transform("mean").astype(float)
    else:
        score = values.astype(float)
    measures = {"auc": single_feature_auc(score, y)}
    distinct = sorted(values.unique())
    if len(distinct) == 2:
        same = float(((values == distinct[1]).astype("int64") == y).mean())
        measures["agreement"] = max(same, 1 - same)
    return measures


def leakage_notes(inspection: Inspection) -> list[str]:
    """Model inputs that predict the target almost alone (single-feature AUC >= LEAKAGE_AUC, or equal to the
    label in >= LEAKAGE_AGREEMENT of the rows): often a column recorded with or after the outcome."""
    label = inspection.label.values
    assert label is not None
    notes = []
    for header in inspection.roles.inputs:
        measures = leakage(inspection.types[header], label)
        found = []
        if measures["auc"] >= LEAKAGE_AUC:
            found.append(f"single-feature AUC {measures['auc']:.3f}")
        if measures.get("agreement", 0.0) >= LEAKAGE_AGREEMENT:
            found.append(f"equal to the target in {measures['agreement']:.1%} of the rows")
        if found:
            notes.append(f"model input '{header}' predicts the target almost alone ({'; '.join(found)}): if it is "
                         "known only with or after the outcome, it leaks the label and the model will not work on new "
                         f"decisions; drop it with --drop-columns '{header}'")  # fmt: skip
    return notes


def data_notes(inspection: Inspection, raw: RawMonths, delay: int, min_group_rows: int) -> list[str]:
    """What the data supports (module docstring), in the order `describe` prints it."""
    label = inspection.label
    assert label.values is not None
    rate = float(label.values.mean())
    return [
        *column_notes(inspection),
        *marker_notes(
            inspection.table, [c for c in inspection.table.frame.columns if c not in inspection.roles.dropped]
        ),
        *month_notes(inspection, raw, delay),
        *group_notes(inspection, len(raw.rows), min_group_rows),
        *proxy_notes(inspection),
        *leakage_notes(inspection),
        f"'{label.positive}' (the adverse outcome) in {rate:.1%} of the rows",
    ]


# --- step: the config file ----------------------------------------------------------------------------------


def write_config(document: dict[str, Any], inspection: Inspection, digest: str, out: Paths) -> Path:
    """FAIRWAY_HOME/usecases/<name>.yaml with a header comment; what is written is checked to read back the same."""
    name, label, roles = document["name"], inspection.label, inspection.roles
    config_path = out.home / "usecases" / f"{name}.yaml"
    header_lines = [
        f"# Use case '{name}', written by `fairway usecase init` from {inspection.table.path.name} (sha256 {digest}).",
        f"# Label '{document['label']['feature']}': 1 = '{roles.target}' was '{label.positive}' (adverse), "
        f"0 = '{label.favourable}'.",
        "# Review the descriptions, owner, legal bases and proxy_risk tags before deploying.",
    ]
    text = "\n".join(header_lines) + "\n" + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)
    parse_usecase(yaml.safe_load(text), source=str(config_path))
    write_atomic(config_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return config_path


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
    na_values: Sequence[str] = (),
    drop_columns: Sequence[str] = (),
    reference: Mapping[str, str] | None = None,
    merge: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    outcome_delay_months: int = DEFAULT_OUTCOME_DELAY,
    force: bool = False,
    out: Paths | None = None,
) -> InitResult:
    """Inspect `csv_path`, write the use case `name` and import its rows as raw monthly data (module docstring).

    `na_values`: extra missing-value markers; `drop_columns`: columns not imported; `reference`: {attribute:
    group key or value}; `merge`: {attribute: {new group key: [values or group keys]}}; `outcome_delay_months`:
    months from a snapshot to the delivery of its outcomes."""
    out = out or paths()
    csv_path = Path(csv_path)
    source = str(csv_path)
    seconds: dict[str, float] = {}
    clock = [time.perf_counter()]

    def step(name: str) -> None:
        now = time.perf_counter()
        seconds[name], clock[0] = round(now - clock[0], 3), now

    settings = Settings(
        name, legal_basis=legal_basis, protected_legal_basis=protected_legal_basis, retention_months=retention_months,
        owner=owner, description=description, start_month=start_month, outcome_delay_months=outcome_delay_months,
    )  # fmt: skip
    problems = check_settings(settings, protected, force, out)
    try:
        table = read_table(csv_path, sep, na_values)
    except DatasetError as exc:
        raise DatasetError(source, problems + exc.problems) from None
    step("read")
    inspection = inspect(table, target, protected, entity, timestamp, positive, drop_columns=drop_columns,
                         reference=reference, merge=merge, start_month=start_month)  # fmt: skip
    problems += inspection.problems
    if problems:
        kept = [c for c in table.frame.columns if c not in inspection.roles.dropped]
        raise DatasetError(source, problems, marker_notes(table, kept))
    step("inspect")
    template = load_usecase_file(TEMPLATE_USECASE)
    document = usecase_document(inspection, settings, template)
    try:
        uc = parse_usecase(document, source=f"generated config of '{name}'")
    except ConfigError as exc:
        raise DatasetError(source, [f"the generated config is not valid: {exc}"]) from None
    digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    step("config")
    raw = write_raw_months(uc, raw_frame(inspection, uc), out)
    step("raw months")
    min_group_rows = int(getattr(uc.gate, "min_group_rows", SMALL_GROUP_ROWS_PER_MONTH))
    notes = data_notes(inspection, raw, outcome_delay_months, min_group_rows)
    step("notes")
    config_path = write_config(document, inspection, digest, out)
    step("write config")
    if force and (out.offline_view(name, f"{name}_inputs").exists() or out.feast_project(name).exists()):
        notes.append(f"FAIRWAY_HOME still holds the offline store and Feast registry of an earlier import of '{name}' "
                     f"({out.offline / name}, {out.feast_project(name)}): delete them, or use a fresh FAIRWAY_HOME, "
                     "before running the lifecycle again")  # fmt: skip
    return InitResult(
        usecase=uc, config_path=config_path, csv_path=csv_path, raw_dir=raw.directory, csv_sha256=digest,
        rows=table.rows, months=raw.rows, label_rows=raw.label_rows, positive=inspection.label.positive,
        favourable=inspection.label.favourable, columns=column_reports(inspection, settings), notes=notes,
        dropped=list(inspection.roles.dropped), seconds=seconds,
    )  # fmt: skip
