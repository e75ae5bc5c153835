"""Test set-up: every test writes under a temporary FAIRWAY_HOME; Airflow gets its own home and SQLite DB.

Airflow reads its configuration at import, so the environment is set here, before any test imports it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
DAGS = PROJECT / "dags"
_ROOT = Path(tempfile.mkdtemp(prefix="fairway-tests-"))

os.environ["AIRFLOW_HOME"] = str(_ROOT / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY"] = "1"  # failure tests retry twice; do not wait 300 s
os.environ["FAIRWAY_HOME"] = str(_ROOT / "home")
# BentoML fixes its store's location when first imported: one store for the session (model tags are unique)
os.environ["BENTOML_HOME"] = str(_ROOT / "bentoml")
os.environ.pop("FAIRWAY_USECASE", None)
os.environ.pop("FAIRWAY_USECASES_DIR", None)
os.environ.pop("FAIRWAY_EVIDENTLY_URL", None)

SMALL = {"customers": 400, "n_months": 4, "seed": 7, "drift_month": 3}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty FAIRWAY_HOME for one test."""
    path = tmp_path / "fairway-home"
    monkeypatch.setenv("FAIRWAY_HOME", str(path))
    # mlflow.set_tracking_uri() writes MLFLOW_TRACKING_URI into os.environ: pin it per test, so it is undone after
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("FAIRWAY_LEDGER_URL", raising=False)  # the ledger under this FAIRWAY_HOME
    monkeypatch.delenv("FAIRWAY_USECASE", raising=False)
    return path


@pytest.fixture
def usecase():  # noqa: ANN201
    from fairway.config import load_usecase

    return load_usecase("credit_risk")


@pytest.fixture
def small_store(home: Path, usecase):  # noqa: ANN001, ANN201
    """Four generated months of 400 customers, drift from month 3, and the Feast repo applied."""
    from fairway.data import generate
    from fairway.features.store import apply_repo

    generate(usecase, **SMALL)
    apply_repo(usecase)
    return home


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[None]:
    """A fresh Airflow metadata DB for the session (dag.test() needs one)."""
    from airflow.utils.db import resetdb

    resetdb()
    yield
