"""`fairway usecase init` on files with the usual troubles of public tabular data (built here, nothing is
downloaded): wide categories, `?` markers and empty cells, a six-valued protected attribute with tiny groups, a
disadvantaged majority, outcomes known two years later, a leaky column, a repeated header among other problems;
and the options that deal with them: --na-values, --drop-columns, --reference, --merge, --outcome-delay-months."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairway.cli import main
from fairway.config import load_usecase
from fairway.data import available_months, read_month, validate_month
from fairway.fairness import group_mask
from fairway.onboarding import DatasetError, init_usecase

RACES = ["White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Pacific-Islander"]
RACE_P = [0.74, 0.14, 0.08, 0.02, 0.015, 0.005]


def _people(rows: int = 3600, seed: int = 0) -> pd.DataFrame:
    """Census-like rows: a 120-valued occupation, '?' in workclass, empty cells in hours and education, a
    six-valued race with tiny groups, and an income that depends on hours and sex."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["Female", "Male"], rows, p=[0.35, 0.65])
    hours = rng.integers(10, 80, rows)
    logit = -1.6 + 0.04 * (hours - 40) + 1.2 * (sex == "Male")
    high = rng.random(rows) < 1 / (1 + np.exp(-logit))
    hours_text = np.where(rng.random(rows) < 0.04, "", hours.astype(str))
    return pd.DataFrame({
        "Age": rng.integers(17, 90, rows),
        "Workclass": rng.choice(["Private", "State-gov", "Self-emp", "?"], rows, p=[0.7, 0.15, 0.1, 0.05]),
        "Occupation": rng.choice([f"Occupation {i:03d}" for i in range(120)], rows),
        "Education": np.where(rng.random(rows) < 0.03, "", rng.choice(["HS-grad", "Bachelors", "Masters"], rows)),
        "Hours per week": hours_text,
        "Race": rng.choice(RACES, rows, p=RACE_P),
        "Sex": sex,
        "Income": np.where(high, ">50K", "<=50K"),
    })  # fmt: skip


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "people.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _snapshots(uc) -> pd.DataFrame:  # noqa: ANN001
    return pd.concat([read_month(uc, m)[0] for m in available_months(uc)], ignore_index=True)


def _notes(result) -> str:  # noqa: ANN001
    return "\n".join(result.notes)


def test_wide_categories_markers_and_missing_cells(home: Path, tmp_path: Path) -> None:
    frame = _people()
    path = _csv(tmp_path, frame)
    questions = int((frame["Workclass"] == "?").sum())
    result = init_usecase("people", path, "Income", ["Race", "Sex"], positive="<=50K")
    uc = load_usecase("people")  # the written file parses
    assert uc == result.usecase
    assert len(uc.feature("occupation").allowed or []) == 120  # a wide category is accepted
    assert "?" in (uc.feature("workclass").allowed or []) and not uc.feature("workclass").nullable
    assert f"column 'Workclass' has {questions:,} cells '?': pass --na-values '?' if they mean missing" in _notes(
        result
    )
    hours, education = uc.feature("hours_per_week"), uc.feature("education")
    assert (hours.dtype, hours.nullable, hours.min) == ("float", True, 0)  # whole numbers with gaps: a float
    assert (
        education.dtype == "string" and education.nullable and education.allowed == ["Bachelors", "HS-grad", "Masters"]
    )
    missing = int((frame["Hours per week"] == "").sum())
    assert f"'Hours per week' {missing:,} (" in _notes(result) and "imputed by the model pipeline" in _notes(result)
    snapshots = _snapshots(uc)
    assert snapshots["hours_per_week"].isna().sum() == missing and snapshots["hours_per_week"].dtype == "float64"
    assert snapshots["education"].isna().sum() == int((frame["Education"] == "").sum())

    again = init_usecase("people", path, "Income", ["Race", "Sex"], positive="<=50K", na_values=["?"], force=True)
    workclass = again.usecase.feature("workclass")
    assert workclass.nullable and workclass.allowed == ["Private", "Self-emp", "State-gov"]
    assert "cells '?'" not in _notes(again)
    assert _snapshots(again.usecase)["workclass"].isna().sum() == questions
    for month in available_months(again.usecase):
        validate_month(again.usecase, month)


def test_tiny_groups_get_a_merge_to_apply(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path, _people())
    base = ["usecase", "init", "--name", "races", "--csv", str(path), "--target", "Income", "--protected", "Race,Sex",
            "--positive", "<=50K"]  # fmt: skip
    assert main(base) == 0
    notes = capsys.readouterr().out
    assert "protected group 'pacific_islander' of 'Race' has about " in notes
    suggested = re.search(r"--merge '(race=[^']+:other)' \(in the config: groups: \{other: \{values: \[([^]]+)\]\}\}\)",
                          notes)  # fmt: skip
    assert suggested, notes
    values = suggested.group(2).split(", ")
    assert set(values) == {"Pacific-Islander", "Other", "Amer-Indian-Eskimo", "Asian-Pac-Islander"}
    assert suggested.group(1) == f"race={','.join(values)}:other"

    assert main([*base, "--merge", suggested.group(1), "--force"]) == 0
    merged = capsys.readouterr().out
    assert "of 'Race' has about" not in merged and "merge" not in merged.split("what the data supports:")[1]
    uc = load_usecase("races")
    race = next(a for a in uc.protected_attributes if a.feature == "race")
    assert set(race.groups) == {"white", "black", "other"} and sorted(race.groups["other"].values or []) == sorted(
        values
    )
    snapshots = _snapshots(uc)
    other = group_mask(snapshots, "race", race.groups["other"])
    assert other.sum() == snapshots["race"].isin(values).sum() > 30 * len(available_months(uc))


def test_the_reference_is_the_advantaged_group_even_when_it_is_a_minority(home: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rows = 1200
    minority = rng.random(rows) < 0.3  # 45 rows a month: a group the gate can assess
    frame = pd.DataFrame({
        "Income": np.round(rng.lognormal(8, 0.3, rows), 2),
        "Group": np.where(minority, "Minority", "Majority"),
        "Age": rng.integers(18, 80, rows),
        "Outcome": np.where(rng.random(rows) < np.where(minority, 0.15, 0.45), "default", "repaid"),
    })  # fmt: skip
    path = _csv(tmp_path, frame)
    result = init_usecase("groups", path, "Outcome", ["Group", "Age"])
    group = result.usecase.protected_attributes[0]
    assert result.favourable == "repaid" and group.reference == "minority"  # 85 % repaid vs 55 %
    assert "protected 'Group': reference group 'minority' (the highest rate: " in _notes(result)
    assert "--reference group=GROUP chooses another" in _notes(result)
    age = result.usecase.protected_attributes[1]
    split = age.groups[next(k for k in age.groups if k.startswith("under_"))].max
    repaid = frame["Outcome"] == "repaid"
    younger_better = repaid[frame["Age"] < split].mean() > repaid[frame["Age"] >= split].mean()
    assert age.reference.startswith("under_") == younger_better  # the half with the higher favourable rate

    named = init_usecase("groups", path, "Outcome", ["Group", "Age"], reference={"Group": "Majority", "age": "70"},
                         force=True)  # fmt: skip
    group, age = named.usecase.protected_attributes
    assert group.reference == "majority" and age.reference.endswith("_and_over")  # a value: the range holding it
    assert "reference group 'majority' (named with --reference: " in _notes(named)
    with pytest.raises(DatasetError) as unknown:
        init_usecase("groups", path, "Outcome", ["Group"], reference={"Group": "Nobody", "Religion": "x"}, force=True)
    text = str(unknown.value)
    assert "--reference Group=Nobody: 'Nobody' is neither a group nor a value of 'Group' (groups: majority, " in text
    assert "--reference names 'Religion', which is not a protected attribute (protected: Group)" in text


def test_outcomes_known_two_years_later(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    per_month, months = 60, 30
    rows = per_month * months
    when = [f"{pd.Period('2020-01', freq='M') + i // per_month}-{1 + i % 28:02d}" for i in range(rows)]
    frame = pd.DataFrame({
        "Applied": when,
        "Amount": rng.integers(500, 5000, rows),
        "Purpose": rng.choice(["car", "home", "study"], rows),
        "Sex": rng.choice(["f", "m"], rows),
        "Defaulted": rng.choice(["yes", "no"], rows, p=[0.2, 0.8]),
    })  # fmt: skip
    path = _csv(tmp_path, frame)
    args = ["usecase", "init", "--name", "slow", "--csv", str(path), "--target", "Defaulted", "--protected", "Sex",
            "--timestamp", "Applied", "--outcome-delay-months", "24"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    uc = load_usecase("slow")
    assert uc.label.available_after_months == 24
    assert "Observed 'Defaulted' of a snapshot, delivered 24 months after it." == uc.view("slow_outcomes").description
    names = available_months(uc)
    assert names[0] == "2020-01" and names[-1] == "2022-06" and len(names) == 30
    for index, month in enumerate(names):
        labels = read_month(uc, month)[1]
        if index < 24:
            assert labels.empty, month
        else:
            snapshot = read_month(uc, names[index - 24])[0]
            assert labels["row_id"].tolist() == snapshot["row_id"].tolist()
            assert (labels["label_ts"] == pd.Timestamp(f"{month}-01", tz="UTC")).all()
            assert (labels["snapshot_ts"] < pd.Timestamp(f"{names[index - 23]}-01", tz="UTC")).all()
    assert f"{6 * per_month:,} outcomes delivered, 24 months after their snapshot" in out
    assert "outcomes are delivered 24 months after their snapshot (label.available_after_months: 24): those of " \
        "2020-01 arrive in the labels of 2022-01; the outcomes of the last 24 months (1,440 rows of " \
        "2020-07..2022-06) would be delivered after the data ends and are not imported" in out  # fmt: skip
    assert "make demo trains on outcomes known at the end of 2022-02 (snapshots 2020-01..2020-02, the latest held " \
        "out), then scores 4 month(s) 2022-03..2022-06" in out  # fmt: skip
    assert "judging decisions needs 25 scored months" in out

    assert main([*args[:-1], "37", "--force"]) == 1
    assert "outcome delay of 37 months is not in 1..36" in capsys.readouterr().err


def test_a_leaky_column_is_named_and_can_be_dropped(home: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    rows = 900
    bad = rng.random(rows) < 0.3
    frame = pd.DataFrame({
        "Income": np.round(rng.lognormal(8, 0.3, rows), 2),
        "Collections (EUR)": np.round(np.where(bad, rng.uniform(100, 900, rows), rng.uniform(0, 120, rows)), 2),
        "Closed by": np.where(rng.random(rows) < 0.97, np.where(bad, "recovery", "customer"),
                              np.where(bad, "customer", "recovery")),  # fmt: skip
        "Housing": rng.choice(["own", "rent"], rows),
        "Sex": rng.choice(["f", "m"], rows),
        "Outcome": np.where(bad, "bad", "good"),
    })  # fmt: skip
    path = _csv(tmp_path, frame)
    result = init_usecase("leaky", path, "Outcome", ["Sex"])
    notes = _notes(result)
    recovery = frame["Closed by"] == "recovery"
    agreement = (recovery == bad).mean()
    balanced = (recovery[bad].mean() + (~recovery[~bad]).mean()) / 2  # the AUC of a two-valued score
    assert f"model input 'Closed by' predicts the target almost alone (single-feature AUC {balanced:.3f}; equal to " \
        f"the target in {agreement:.1%} of the rows)" in notes  # fmt: skip
    assert "drop it with --drop-columns 'Closed by'" in notes
    assert "model input 'Collections (EUR)' predicts the target almost alone (single-feature AUC 0." in notes
    assert "'Housing' predicts" not in notes and "'Income' predicts" not in notes

    dropped = init_usecase("leaky", path, "Outcome", ["Sex"], drop_columns=["Closed by", "collections_eur"], force=True)
    assert dropped.dropped == ["Closed by", "Collections (EUR)"]
    assert dropped.usecase.model_inputs == ["income", "housing"]
    assert "dropped at import (--drop-columns): 'Closed by', 'Collections (EUR)'" in _notes(dropped)
    assert "predicts the target" not in _notes(dropped)
    assert [c.role for c in dropped.columns][-2:] == ["dropped", "dropped"]
    assert "Closed by" in dropped.describe() and "not imported (--drop-columns)" in dropped.describe()


def test_a_repeated_header_and_every_other_problem_in_one_error(home: Path, tmp_path: Path) -> None:
    rows = 300
    frame = pd.DataFrame({
        "Amount": np.arange(rows) % 17,
        "Amount2": 5,  # constant, under a repeated header
        "Hours": np.where(np.arange(rows) % 50 == 0, "?", (np.arange(rows) % 40).astype(str)),
        "Comment": [f"call {i}" for i in range(rows)],
        "When": ["2024-01-10"] * 150 + ["10/02/2024"] + ["2024-02-10"] * 149,
        "Sex": np.where(np.arange(rows) % 3 == 0, "f", "m"),
        "Outcome": np.where(np.arange(rows) % 4 == 0, "bad", "good"),
    })  # fmt: skip
    frame.loc[[7, 9], "Outcome"] = np.nan
    path = _csv(tmp_path, frame)
    text = path.read_text().replace("Amount,Amount2,", "Amount,Amount,", 1)
    path.write_text(text)
    with pytest.raises(DatasetError) as excinfo:
        init_usecase("broken", path, "Outcome", ["Sex"], timestamp="When", drop_columns=["Nope"],
                     reference={"Religion": "x"}, merge={"Sex": {"both": ["f", "x"]}})  # fmt: skip
    error = excinfo.value
    assert error.problems == [
        "repeated column header(s): ['Amount'] ('Amount' in columns 1, 2): rename them in the file",
        "dropped column 'Nope' is not in the file (columns: Amount (column 1), Amount (column 2), Hours, Comment, "
        "When, Sex, Outcome)",
        "column 'Outcome': 2 missing value(s) (lines 9, 11) in the target, which needs a value in every row (rows "
        "are never dropped): fill them, or remove those rows from the file",
        "column 'Amount (column 2)' is constant (every row is '5'): it carries no information, drop it",
        "column 'Comment' looks like an id or free text (300 distinct values in 300 rows; a category has at most 200 "
        "and repeats): drop it, or name it with --entity if it identifies the subject",
        "timestamp column 'When': 1 value(s) are not ISO 8601 dates or date-times (line 152; e.g. '10/02/2024')",
        "--reference names 'Religion', which is not a protected attribute (protected: Sex)",
        "--merge Sex: 'x' is neither a value nor a group of 'Sex' (values: 'f', 'm')",
    ]
    assert error.hints == ["column 'Hours' has 6 cells '?': pass --na-values '?' if they mean missing"]
    assert "8 problem(s)" in str(error) and "hints:\n  - column 'Hours' has 6 cells '?'" in str(error)
    assert not (home / "usecases" / "broken.yaml").exists() and not (home / "data" / "raw" / "broken").exists()


def test_the_new_options_through_the_command_line(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _csv(tmp_path, _people(1800))
    args = ["usecase", "init", "--name", "opts", "--csv", str(path), "--target", "Income", "--protected", "Race",
            "--protected", "Sex", "--na-values", "?", "--na-values", "n/a,-", "--drop-columns", "Occupation,Age",
            "--reference", "sex=Female", "--merge", "race=Amer-Indian-Eskimo,Other:other",
            "--merge", "race=Pacific-Islander,Asian-Pac-Islander:asian_pacific", "--outcome-delay-months", "2"]  # fmt: skip
    assert main(args) == 0
    uc = load_usecase("opts")
    assert uc.model_inputs == ["workclass", "education", "hours_per_week"] and uc.feature("workclass").nullable
    race, sex = uc.protected_attributes
    assert sex.reference == "female" and uc.label.available_after_months == 2
    assert race.groups["other"].values == ["Amer-Indian-Eskimo", "Other"]
    assert race.groups["asian_pacific"].values == ["Asian-Pac-Islander", "Pacific-Islander"]
    assert set(race.groups) == {"asian_pacific", "black", "other", "white"}
    capsys.readouterr()
    assert main([*args, "--reference", "sex=Male", "--force"]) == 1
    assert "--reference names 'sex' twice ('Female' and 'Male')" in capsys.readouterr().err
    assert main([*args, "--merge", "race=White", "--force"]) == 1
    assert "--merge 'race=White' is not ATTRIBUTE=VALUE,VALUE[,...]:GROUP" in capsys.readouterr().err
