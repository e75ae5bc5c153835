"""Tabular files with the properties of public fairness datasets, built here (nothing is downloaded).

`census_like` follows the shape of a census-income extract: ~15 columns of mixed types, categories from 2 to 41
values with `?` markers and empty cells, a six-valued race attribute with tiny groups, and an income outcome
whose recorded rate differs by sex (more than 30 % of men above the income line, about 11 % of women: the
favourable outcome's disparate impact near 0.35). Part of the gap runs through inputs that are associated with
sex (marital status, relationship, hours, occupation), part is recorded directly. Options add a leaky column, a
timestamp and generated ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

OCCUPATIONS = ["Adm-clerical", "Armed-Forces", "Craft-repair", "Exec-managerial", "Farming-fishing",
               "Handlers-cleaners", "Machine-op-inspct", "Other-service", "Priv-house-serv", "Prof-specialty",
               "Protective-serv", "Sales", "Tech-support", "Transport-moving"]  # fmt: skip
OCCUPATION_SKILL = dict(zip(OCCUPATIONS, [0.0, 0.2, 0.1, 1.2, -0.8, -1.0, -0.6, -1.2, -1.5, 1.1, 0.4, 0.3, 0.6,
                                          -0.2], strict=True))  # fmt: skip
WORKCLASSES = ["Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov", "State-gov",
               "Without-pay"]  # fmt: skip
EDUCATION = ["Preschool", "1st-4th", "5th-6th", "7th-8th", "9th", "10th", "11th", "12th", "HS-grad", "Some-college",
             "Assoc-voc", "Assoc-acdm", "Bachelors", "Masters", "Prof-school", "Doctorate"]  # fmt: skip
EDUCATION_P = [0.002, 0.005, 0.01, 0.02, 0.016, 0.028, 0.036, 0.013, 0.32, 0.22, 0.042, 0.033, 0.165, 0.055, 0.018,
               0.017]  # fmt: skip
RACES = ["White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Pacific-Islander"]
RACE_P = [0.853, 0.096, 0.031, 0.0096, 0.0083, 0.0021]
COUNTRIES = ["United-States", "Mexico", "Philippines", "Germany", "Canada", "Puerto-Rico", "El-Salvador", "India",
             "Cuba", "England", "Jamaica", "South", "China", "Italy", "Dominican-Republic", "Vietnam", "Guatemala",
             "Japan", "Poland", "Columbia", "Taiwan", "Haiti", "Iran", "Portugal", "Nicaragua", "Peru", "France",
             "Greece", "Ecuador", "Ireland", "Hong", "Cambodia", "Trinadad&Tobago", "Laos", "Thailand", "Yugoslavia",
             "Outlying-US", "Hungary", "Honduras", "Scotland", "Holand-Netherlands"]  # fmt: skip


def _countries(rng: np.random.Generator, rows: int) -> np.ndarray:
    rest = np.geomspace(0.02, 0.00005, len(COUNTRIES) - 1)
    weights = np.concatenate([[0.91], rest / rest.sum() * 0.09])
    return rng.choice(COUNTRIES, rows, p=weights / weights.sum())


def census_like(rows: int = 45_000, seed: int = 0, *, gap: float = 1.0, leaky: bool = False,
                timestamp_months: int = 0, ids: bool = False) -> pd.DataFrame:  # fmt: skip
    """A census-income-like frame (see the module docstring); `Income` is '>50K' or '<=50K'.
    `gap` scales every difference between the sexes (marriage, hours, occupations, the recorded gap): 1 is the
    census-like gap (about 30 % vs 10 % above the income line), 0 none.
    `leaky`: add 'Tax bracket', equal to the outcome in 97 % of rows. `timestamp_months`: add 'Interview date'
    spread over that many consecutive months from 2020-01. `ids`: add 'Person' ids (P000001...)."""
    rng = np.random.default_rng(seed)
    male = rng.random(rows) < 0.67
    age = np.clip(np.round(rng.gamma(6.5, 6.0, rows) + 12), 17, 90).astype(int)
    education = rng.choice(EDUCATION, rows, p=np.array(EDUCATION_P) / sum(EDUCATION_P))
    education_num = np.array([EDUCATION.index(e) + 1 for e in education])
    married = rng.random(rows) < np.where(male, 0.62, 0.62 - 0.35 * gap) * np.clip((age - 17) / 20, 0.1, 1)
    marital = np.where(married, "Married-civ-spouse",
                       rng.choice(["Never-married", "Divorced", "Separated", "Widowed", "Married-spouse-absent",
                                   "Married-AF-spouse"], rows, p=[0.62, 0.25, 0.05, 0.05, 0.025, 0.005]))  # fmt: skip
    relationship = np.where(married, np.where(male, "Husband", "Wife"),
                            rng.choice(["Not-in-family", "Own-child", "Unmarried", "Other-relative"], rows,
                                       p=[0.5, 0.3, 0.15, 0.05]))  # fmt: skip
    male_jobs = np.array([0.9, 3, 2.2, 1.2, 1.6, 1.3, 1.3, 0.7, 0.1, 1.0, 1.5, 1.0, 1.0, 2.5])
    jobs_m = male_jobs / male_jobs.sum()
    jobs_f = (1 - gap) * jobs_m + gap * (1 / male_jobs) / (1 / male_jobs).sum()
    occupation = np.where(male, rng.choice(OCCUPATIONS, rows, p=jobs_m), rng.choice(OCCUPATIONS, rows, p=jobs_f))
    workclass = rng.choice(WORKCLASSES, rows, p=[0.74, 0.08, 0.035, 0.03, 0.065, 0.045, 0.005])
    hours = np.clip(np.round(rng.normal(np.where(male, 43, 43 - 7 * gap), 11, rows)), 1, 99).astype(int)
    gain = np.where(rng.random(rows) < 0.085, np.round(rng.lognormal(8.2, 1.0, rows)), 0.0)
    race = rng.choice(RACES, rows, p=np.array(RACE_P) / sum(RACE_P))
    skill = np.array([OCCUPATION_SKILL[o] for o in occupation])
    logit = (-4.7 + 0.42 * (education_num - 9) + 0.045 * np.minimum(age - 17, 40) + 1.6 * married
             + 0.035 * (hours - 40) + 0.9 * skill + 0.00028 * gain + 0.3 * (workclass == "Self-emp-inc")
             + 0.45 * gap * male - 0.35 * (race == "Black"))  # fmt: skip
    high = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({
        "age": age, "workclass": workclass, "fnlwgt": rng.integers(12_000, 1_500_000, rows),
        "education": education, "education-num": education_num, "marital-status": marital,
        "occupation": occupation, "relationship": relationship, "race": race,
        "sex": np.where(male, "Male", "Female"), "capital-gain": gain,
        "hours-per-week": hours, "native-country": _countries(rng, rows),
        "income": np.where(high, ">50K", "<=50K"),
    })  # fmt: skip
    frame.loc[rng.random(rows) < 0.056, "workclass"] = "?"
    frame.loc[(frame["workclass"] == "?") | (rng.random(rows) < 0.002), "occupation"] = "?"
    frame.loc[rng.random(rows) < 0.018, "native-country"] = "?"
    frame["hours-per-week"] = frame["hours-per-week"].astype(object)
    frame.loc[rng.random(rows) < 0.01, "hours-per-week"] = None  # empty cells
    if leaky:
        agrees = rng.random(rows) < 0.97
        frame.insert(len(frame.columns) - 1, "Tax bracket", np.where(agrees == high, "upper", "lower"))
    if timestamp_months:
        month = np.sort(rng.integers(0, timestamp_months, rows))
        start = pd.Period("2020-01", freq="M")
        frame.insert(0, "Interview date", [str((start + int(m)).start_time.date() + pd.Timedelta(days=int(d)))
                                           for m, d in zip(month, rng.integers(0, 28, rows), strict=True)])  # fmt: skip
    if ids:
        frame.insert(0, "Person", [f"P{i:06d}" for i in range(1, rows + 1)])
    return frame


def write_census_like(path: Path, rows: int = 45_000, seed: int = 0, **options: object) -> Path:
    census_like(rows, seed, **options).to_csv(path, index=False)  # type: ignore[arg-type]
    return path


def credit_portfolio(uc: Any, rows: int, seed: int) -> pd.DataFrame:
    """The default use case's model inputs, drawn independently per column (no customer behind a row), and a
    uniform `score`: a drift report's input whose every shift is the one a test makes."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "income": rng.lognormal(7.8, 0.4, rows),
        "debt_ratio": rng.uniform(0, 1, rows),
        "credit_amount": rng.lognormal(9, 0.8, rows),
        "loan_duration_months": rng.integers(12, 360, rows),
        "late_payments_12m": rng.integers(0, 4, rows),
        "savings_balance": rng.lognormal(8, 1, rows),
        "tenure_months": rng.integers(0, 300, rows),
        "employment_type": rng.choice(["permanent", "temporary", "self_employed"], rows),
        "housing": rng.choice(["own", "rent", "family"], rows),
        "residential_area": rng.choice(["north", "south", "east", "west", "centre"], rows),
    })  # fmt: skip
    assert list(frame.columns) == uc.model_inputs
    frame["score"] = rng.uniform(0, 1, rows)
    return frame
