"""`fairway usecase init`: a CSV becomes a use case and raw monthly data, or every problem is named."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairway.cli import main
from fairway.config import load_usecase
from fairway.data import available_months, read_month, validate_month
from fairway.fairness import group_mask
from fairway.onboarding import (
    MAX_MONTHS,
    MIN_ROWS_PER_MONTH,
    DatasetError,
    init_usecase,
    lifecycle,
    month_count,
    row_ids,
    sanitise,
    spread_months,
)


def _frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "Income (EUR)": np.round(rng.lognormal(8, 0.4, rows), 2),
        "Balance": np.round(rng.normal(0, 1000, rows), 2),  # negative values: no min
        "Late payments": rng.integers(0, 5, rows),
        "Housing": rng.choice(["own", "rent", "family"], rows),
        "Has car": rng.choice(["TRUE", "False", "true"], rows),
        "Sex": rng.choice(["female", "male"], rows, p=[0.4, 0.6]),
        "Age": rng.integers(18, 80, rows),
        "Outcome": rng.choice(["bad", "good"], rows, p=[0.3, 0.7]),
    })  # fmt: skip


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _problems(excinfo: pytest.ExceptionInfo[DatasetError]) -> str:
    return str(excinfo.value)


# --- inference and the written use case -------------------------------------------------------------------


def test_types_roles_groups_and_catalogue_of_the_written_use_case(home: Path, tmp_path: Path) -> None:
    frame = _frame()
    result = init_usecase("loans", _csv(tmp_path, frame), "Outcome", ["Sex", "Age"])
    assert result.config_path == home / "usecases" / "loans.yaml"
    uc = load_usecase("loans")  # found in FAIRWAY_HOME/usecases
    assert uc == result.usecase and uc.synthetic is None and uc.gate.approval_mode == "human"
    types = {f.name: (f.dtype, f.min, f.allowed) for f in uc.features}
    assert types["income_eur"] == ("float", 0, None)
    assert types["late_payments"] == ("int", 0, None) and uc.feature("late_payments").max == 100  # values 0-4
    # bounds an order of magnitude past the data, as powers of ten: a negative value gives a negative minimum
    low, high = frame["Balance"].min(), frame["Balance"].max()
    balance = uc.feature("balance")
    assert balance.dtype == "float" and balance.min == -(10 ** math.ceil(math.log10(-10 * low)))
    assert balance.max == 10 ** math.ceil(math.log10(10 * high)) and balance.max >= 10 * high
    income = uc.feature("income_eur")
    assert 10 * frame["Income (EUR)"].max() <= income.max < 100 * frame["Income (EUR)"].max()
    assert types["housing"] == ("string", None, ["family", "own", "rent"])
    assert types["has_car"] == ("string", None, ["false", "true"])  # bool-like: a category, any letter case
    assert types["outcome"] == ("int", 0, None) and uc.feature("outcome").max == 1
    assert uc.model_inputs == ["income_eur", "balance", "late_payments", "housing", "has_car"]
    assert uc.protected_features == ["sex", "age"]
    assert not set(uc.model_inputs) & set(uc.protected_features)
    for name in ("sex", "age"):
        feature = uc.feature(name)
        assert feature.tags.protected and feature.tags.legal_basis == "legal_obligation"
        assert not uc.view(feature.view).online
    assert uc.feature("income_eur").tags.legal_basis == "contract"
    assert all(f.tags.personal_data and f.tags.retention_months == 84 for f in uc.features)
    assert uc.service("fairness_audit").name == "fairness_audit_v1"

    sex, age = uc.protected_attributes
    favourable = (frame["Outcome"] == "good").groupby(frame["Sex"]).mean()
    assert set(sex.groups) == {"female", "male"}
    assert sex.reference == favourable.idxmax()  # the highest rate of the favourable outcome ('good')
    assert sex.groups["female"].values == ["female"]
    median = float(np.ceil(np.median(frame["Age"])))
    assert set(age.groups) == {f"under_{median:g}", f"{median:g}_and_over"}
    assert age.groups[f"under_{median:g}"].max == median and age.groups[f"{median:g}_and_over"].min == median
    snapshots = pd.concat([read_month(uc, m)[0] for m in available_months(uc)])
    under = group_mask(snapshots, "age", age.groups[f"under_{median:g}"])
    over = group_mask(snapshots, "age", age.groups[f"{median:g}_and_over"])
    assert (under ^ over).all() and under.any() and over.any()  # the split partitions every row
    assert (snapshots["age"][under] < median).all() and (snapshots["age"][over] >= median).all()
    good = (frame["Outcome"] == "good").to_numpy()
    ages = frame["Age"].to_numpy()
    higher_under = good[ages < median].mean() > good[ages >= median].mean()
    assert age.reference == (f"under_{median:g}" if higher_under else f"{median:g}_and_over")
    roles = {c.source: c.role for c in result.columns}
    assert roles["Sex"] == "protected" and roles["Outcome"] == "label" and roles["Housing"] == "model input"


def test_reserved_and_odd_names_are_sanitised(home: Path, tmp_path: Path) -> None:
    frame = _frame(200).rename(columns={"Balance": "score", "Late payments": "2nd  Loan--Count"})
    uc = init_usecase("odd", _csv(tmp_path, frame), "Outcome", ["Sex"]).usecase
    assert "score_value" in uc.model_inputs and "c_2nd_loan_count" in uc.model_inputs
    assert sanitise(" Loan Amount (EUR) ") == "loan_amount_eur" and sanitise("%") == "c_"


def test_generated_ids_months_and_label_delivery(home: Path, tmp_path: Path) -> None:
    frame = _frame(1000)
    result = init_usecase("spread", _csv(tmp_path, frame), "Outcome", ["Sex"])
    uc = result.usecase
    months = available_months(uc)
    assert month_count(1000) == 1000 // MIN_ROWS_PER_MONTH == 6
    assert months == ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
    assert list(result.months.values()) == [167, 167, 166, 167, 167, 166]
    snapshots = [read_month(uc, m)[0] for m in months]
    ids = pd.concat(s["row_id"] for s in snapshots).tolist()
    assert ids == row_ids(1000) and ids[0] == "R0000001" and ids[-1] == "R0001000"  # file order
    for month, snapshot in zip(months, snapshots, strict=True):
        assert (snapshot["snapshot_ts"] == pd.Timestamp(f"{month}-01", tz="UTC")).all()
        assert str(snapshot["snapshot_ts"].dtype) == "datetime64[us, UTC]"
    first_labels = read_month(uc, "2024-01")[1]
    assert first_labels.empty
    for previous, month in zip(months, months[1:], strict=False):
        labels = read_month(uc, month)[1]
        earlier = read_month(uc, previous)[0]
        assert labels["row_id"].tolist() == earlier["row_id"].tolist()
        assert (labels["snapshot_ts"] == earlier["snapshot_ts"]).all()
        assert (labels["label_ts"] == pd.Timestamp(f"{month}-01", tz="UTC")).all()
        rows = frame.iloc[[int(i[1:]) - 1 for i in labels["row_id"]]]
        assert labels["outcome"].tolist() == (rows["Outcome"] == "bad").astype(int).tolist()
    assert result.label_rows == 1000 - result.months["2024-06"]  # the last month's outcomes are not imported
    assert any("outcomes of the last month (166 rows of 2024-06)" in n for n in result.notes)
    assert any("no timestamp column" in n for n in result.notes)
    for month in months:
        validate_month(uc, month)


def test_month_rule_bounds() -> None:
    assert month_count(1) == 1 and month_count(MIN_ROWS_PER_MONTH * 2 - 1) == 1
    assert month_count(MIN_ROWS_PER_MONTH * 40) == MAX_MONTHS
    spread = spread_months(7 * MIN_ROWS_PER_MONTH + 3, "2023-11")
    counts = pd.Series(spread).value_counts(sort=False)
    assert list(counts.index) == ["2023-11", "2023-12", "2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    assert counts.max() - counts.min() <= 1 and spread == sorted(spread)


def test_timestamp_and_entity_columns(home: Path, tmp_path: Path) -> None:
    frame = _frame(360)
    frame["customer"] = [f"K{i % 120}" for i in range(360)]  # each customer once per month
    frame["when"] = [f"2023-{1 + i // 120:02d}-{1 + i % 28:02d}T10:00:00+02:00" for i in range(360)]
    result = init_usecase("panel", _csv(tmp_path, frame), "Outcome", ["Sex"], entity="customer", timestamp="when")
    uc = result.usecase
    assert uc.entity.join_key == "customer" and "when" not in [f.name for f in uc.features]
    assert available_months(uc) == ["2023-01", "2023-02", "2023-03"]
    snapshot = read_month(uc, "2023-02")[0]
    assert snapshot["snapshot_ts"].iloc[0] == pd.Timestamp("2023-02-09T08:00:00", tz="UTC")  # offset to UTC
    labels = read_month(uc, "2023-02")[1]
    assert sorted(labels["customer"]) == sorted(f"K{i}" for i in range(120))


# --- the label -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "positive", "expected"),
    [
        (["bad", "good", "good"], None, "bad"),  # the less frequent value
        (["bad", "bad", "good"], None, "good"),
        (["bad", "good", "good"], "GOOD", "good"),  # named, letter case ignored
        (["0", "1", "1"], None, "1"),  # 0/1: 1 even when more frequent
        (["False", "TRUE", "TRUE"], None, "TRUE"),
        (["1.0", "0.0", "0.0"], None, "1.0"),
    ],
)
def test_positive_value_rule(
    home: Path, tmp_path: Path, values: list[str], positive: str | None, expected: str
) -> None:
    frame = _frame(300)
    frame["Outcome"] = [values[i % 3] for i in range(300)]
    result = init_usecase("labels", _csv(tmp_path, frame), "Outcome", ["Sex"], positive=positive)
    assert result.positive == expected
    assert f"'{expected}'" in result.usecase.label.description
    assert result.usecase.label.positive_value == 1 and result.usecase.label.favourable_value == 0
    labels = read_month(result.usecase, "2024-02")[1]
    first = frame.iloc[: len(labels)]
    assert labels["outcome"].tolist() == (first["Outcome"] == expected).astype(int).tolist()


def test_label_problems(home: Path, tmp_path: Path) -> None:
    frame = _frame(300)
    frame["Outcome"] = ["bad", "good"] * 150
    with pytest.raises(DatasetError) as tie:
        init_usecase("tie", _csv(tmp_path, frame), "Outcome", ["Sex"])
    assert "'bad' and 'good' are equally frequent: name the adverse outcome with --positive" in _problems(tie)
    with pytest.raises(DatasetError) as unknown:
        init_usecase("tie", _csv(tmp_path, frame), "Outcome", ["Sex"], positive="default")
    assert "--positive 'default' is not a value of target column 'Outcome' (values: 'bad', 'good')" in _problems(
        unknown
    )
    frame["Outcome"] = ["a", "b", "c"] * 100
    with pytest.raises(DatasetError) as three:
        init_usecase("three", _csv(tmp_path, frame), "Outcome", ["Sex"])
    assert "target column 'Outcome' must have exactly two values, found 3: 'a', 'b', 'c'" in _problems(three)


# --- problems in the file ------------------------------------------------------------------------------------


def test_every_problem_is_named_in_one_message(home: Path, tmp_path: Path) -> None:
    frame = _frame(300)
    frame["Region"] = "north"  # constant
    frame["Comment"] = [f"note {i}" for i in range(300)]  # free text
    frame.loc[[3, 10, 20], "Income (EUR)"] = np.nan  # a model input: kept as nulls, not a problem
    frame.loc[[4, 11], "Sex"] = np.nan  # a protected attribute needs a value in every row
    with pytest.raises(DatasetError) as excinfo:
        init_usecase("many", _csv(tmp_path, frame), "Outcome", ["Sex", "Religion"])
    text = _problems(excinfo)
    assert "4 problem(s)" in text and "column 'Income" not in text
    assert (
        "column 'Sex': 2 missing value(s) (lines 6, 13) in the protected attribute, which needs a value in every "
        "row (rows are never dropped)" in text
    )
    assert "column 'Region' is constant (every row is 'north')" in text
    assert "column 'Comment' looks like an id or free text (300 distinct values in 300 rows" in text
    assert "protected column 'Religion' is not in the file" in text
    assert not (home / "usecases" / "many.yaml").exists() and not (home / "data" / "raw" / "many").exists()


def test_missing_target_and_no_model_input(home: Path, tmp_path: Path) -> None:
    frame = _frame(300)
    with pytest.raises(DatasetError) as missing:
        init_usecase("t", _csv(tmp_path, frame), "Default", ["Sex"])
    assert "target column 'Default' is not in the file (columns: Income (EUR), Balance" in _problems(missing)
    with pytest.raises(DatasetError) as nothing_left:
        init_usecase("t", _csv(tmp_path, frame[["Sex", "Age", "Outcome"]]), "Outcome", ["Sex", "Age"])
    assert "no column is left as a model input" in _problems(nothing_left)
    with pytest.raises(DatasetError) as twice:
        init_usecase("t", _csv(tmp_path, frame), "Outcome", ["Outcome"])
    assert "column 'Outcome' cannot be both target and protected" in _problems(twice)


def test_duplicate_entity_in_a_month(home: Path, tmp_path: Path) -> None:
    frame = _frame(300)
    frame["id"] = [f"P{i}" for i in range(300)]
    frame.loc[7, "id"] = "P3"
    with pytest.raises(DatasetError) as excinfo:
        init_usecase("dupes", _csv(tmp_path, frame), "Outcome", ["Sex"], entity="id")
    assert "entity column 'id': 1 id(s) appear more than once in the same month ('P3' in 2024-01; lines 5, 9)" in (
        _problems(excinfo)
    )


def test_timestamp_problems(home: Path, tmp_path: Path) -> None:
    frame = _frame(300)
    frame["when"] = ["2024-01-15"] * 100 + ["15/02/2024"] * 2 + ["2024-03-10"] * 198
    with pytest.raises(DatasetError) as bad:
        init_usecase("times", _csv(tmp_path, frame), "Outcome", ["Sex"], timestamp="when")
    assert "timestamp column 'when': 2 value(s) are not ISO 8601 dates or date-times (lines 102, 103; e.g. " in (
        _problems(bad)
    )
    frame["when"] = ["2024-01-15"] * 100 + ["2024-03-10"] * 200
    with pytest.raises(DatasetError) as gap:
        init_usecase("times", _csv(tmp_path, frame), "Outcome", ["Sex"], timestamp="when")
    assert "timestamp column 'when' leaves month(s) without rows: 2024-02" in _problems(gap)


def test_names_that_clash_after_sanitising(home: Path, tmp_path: Path) -> None:
    frame = _frame(300)
    frame["income eur"] = frame["Income (EUR)"] * 2
    with pytest.raises(DatasetError) as excinfo:
        init_usecase("clash", _csv(tmp_path, frame), "Outcome", ["Sex"])
    assert "columns ['Income (EUR)', 'income eur'] all become the feature name 'income_eur': rename them" in (
        _problems(excinfo)
    )
    frame = _frame(300).assign(row_id=range(300))
    with pytest.raises(DatasetError) as generated:
        init_usecase("clash", _csv(tmp_path, frame), "Outcome", ["Sex"])
    assert "column 'row_id' becomes 'row_id', the name of the generated id column" in _problems(generated)


def test_empty_files(home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetError, match="the file is empty"):
        init_usecase("e", empty, "Outcome", ["Sex"])
    header = tmp_path / "header.csv"
    header.write_text("Income,Sex,Outcome\n")
    with pytest.raises(DatasetError, match="the file has a header but no rows"):
        init_usecase("e", header, "Outcome", ["Sex"])
    with pytest.raises(DatasetError, match="the file does not exist"):
        init_usecase("e", tmp_path / "nowhere.csv", "Outcome", ["Sex"])
    repeated = tmp_path / "repeated.csv"
    repeated.write_text("a,a,Sex,Outcome\n1,2,f,bad\n")
    with pytest.raises(DatasetError, match=r"repeated column header\(s\): \['a'\]"):
        init_usecase("e", repeated, "Outcome", ["Sex"])


def test_names_of_use_cases(home: Path, tmp_path: Path) -> None:
    path = _csv(tmp_path, _frame(300))
    with pytest.raises(DatasetError) as builtin:
        init_usecase("credit_risk", path, "Outcome", ["Sex"])
    assert "use-case name 'credit_risk' is a built-in use case" in _problems(builtin)
    with pytest.raises(DatasetError) as invalid:
        init_usecase("My Loans", path, "Outcome", ["Sex"], legal_basis="because")
    assert "use-case name 'My Loans' must be a lower-case identifier" in _problems(invalid)
    assert "legal basis 'because' is not one of consent, contract" in _problems(invalid)
    init_usecase("mine", path, "Outcome", ["Sex"])
    with pytest.raises(DatasetError) as again:
        init_usecase("mine", path, "Outcome", ["Sex"])
    assert "use case 'mine' already exists" in _problems(again) and "--force" in _problems(again)
    shorter = _csv(tmp_path, _frame(150), "shorter.csv")
    init_usecase("mine", shorter, "Outcome", ["Sex"], force=True)
    assert available_months(load_usecase("mine")) == ["2024-01"]  # the raw data was replaced whole


# --- what the data supports ----------------------------------------------------------------------------------


def test_notes_on_small_groups_proxies_and_short_data(home: Path, tmp_path: Path) -> None:
    frame = _frame(300, seed=3)
    frame["Origin"] = np.where(np.arange(300) % 10 == 0, "abroad", "here")
    frame["District"] = np.where(frame["Origin"] == "abroad", "east", "west")  # determines the origin
    result = init_usecase("short", _csv(tmp_path, frame), "Outcome", ["Sex", "Origin"])
    notes = "\n".join(result.notes)
    assert "only 2 month(s): training needs 3" in notes and "cannot run" in notes
    assert "protected group 'abroad' of 'Origin' has about 15 rows a month" in notes
    assert "model input 'District' is associated with protected 'Origin' (strength 1.00)" in notes
    assert "'Housing' is associated" not in notes


def test_lifecycle_plan() -> None:
    months = [f"2024-{m:02d}" for m in range(1, 13)]
    assert lifecycle(months).train_until == 6 and len(lifecycle(months).scored) == 6
    six = lifecycle(months[:6])
    assert six.train_until == 4 and six.scored == ["2024-05", "2024-06"] and six.runnable
    four = lifecycle(months[:4])
    assert four.train_until == 3 and four.scored == ["2024-04"]
    assert "no decision meets its outcome" in "\n".join(four.notes)
    assert not lifecycle(months[:3]).runnable


# --- the command line ----------------------------------------------------------------------------------------


def test_cli(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path, _frame(400))
    args = ["usecase", "init", "--name", "cli_loans", "--csv", str(path), "--target", "Outcome"]
    assert main([*args, "--protected", "Sex,Religion"]) == 1
    assert "protected column 'Religion' is not in the file" in capsys.readouterr().err
    assert main([*args, "--protected", "Sex,Age", "--positive", "good", "--retention-months", "36"]) == 0
    out = capsys.readouterr().out
    assert "use case 'cli_loans' written to" in out and "label: 'outcome' = 1 when 'good'" in out
    assert "what the data supports:" in out and "next: make demo USECASE=cli_loans" in out
    uc = load_usecase("cli_loans")
    assert uc.protected_features == ["sex", "age"] and uc.feature("sex").tags.retention_months == 36
