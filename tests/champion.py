"""Fixtures built the way the DAGs build them: a feature store, and a champion (train, register, gate, approve,
promote)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def make_champion(uc: Any, window_end: str, length: int, candidate: str = "reweighing") -> str:
    from fairway import promotion
    from fairway.training import build_training_frame, register_best, train_candidate

    frame = build_training_frame(uc, window_end, length)
    registered = register_best(uc, [train_candidate(uc, frame, candidate)])
    gated = promotion.gate_candidate(uc, registered["version"])
    assert gated["decision"] == "pass", gated["reasons"]
    promotion.promote(uc, gated, promotion.approval_from_response(
        {"chosen_options": ["Approve"], "params_input": {"comment": "test"}, "responded_at": "2031-01-01T00:00:00+00:00",
         "responded_by_user": {"id": "t", "name": "tester"}}, gated))  # fmt: skip
    return str(registered["version"])


def feature_store(uc: Any, customers: int, months: int, seed: int, drift_month: int | None = None,
                  churn: float = 0.02, online_months: int = 0) -> list[str]:  # fmt: skip
    """Generated snapshots in the offline store (every month) and the online store (the last `online_months`),
    as feature_pipeline leaves them; returns the months."""
    from fairway.data import available_months, generate
    from fairway.features.store import apply_repo, materialize_month, write_offline_partition

    generate(uc, customers, months, seed, drift_month, churn)
    apply_repo(uc)
    written = available_months(uc)
    for month in written:
        write_offline_partition(uc, month)
    for month in written[len(written) - online_months :] if online_months else []:
        materialize_month(uc, month)
    return written


def pin_home(mp: pytest.MonkeyPatch, home: Path) -> None:
    """Point Fairway at `home`: its FAIRWAY_HOME, its MLflow registry, a test pseudonymisation key, the decision
    log under it."""
    mp.setenv("FAIRWAY_HOME", str(home))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    mp.delenv("FAIRWAY_LEDGER_URL", raising=False)  # the ledger under this FAIRWAY_HOME, beside its registry
    mp.setenv("FAIRWAY_PSEUDONYM_KEY", "test-key-not-secret")
    mp.delenv("FAIRWAY_DECISION_LOG_URL", raising=False)


def dag_bag() -> Any:
    """The DAGs as Airflow's dag processor and task runner load them (the dags folder on sys.path)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    from tests.conftest import DAGS

    return BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS)


@contextlib.contextmanager
def isolated_home(tmp_path_factory: Any, name: str) -> Iterator[Path]:
    """A module's own FAIRWAY_HOME (see pin_home), undone afterwards."""
    home = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        pin_home(mp, home)
        yield home


@contextlib.contextmanager
def january_with_outcomes(tmp_path_factory: Any, name: str, customers: int = 1500, seed: int = 3) -> Iterator[Any]:
    """In an isolated home: the use case and January's generated snapshots joined with their outcomes (known in
    February), the frame candidates are fitted on."""
    from fairway.config import load_usecase
    from fairway.data import generate, read_month

    with isolated_home(tmp_path_factory, name):
        uc = load_usecase("credit_risk")
        generate(uc, customers=customers, n_months=2, seed=seed)
        snapshot, _ = read_month(uc, "2024-01")
        _, labels = read_month(uc, "2024-02")
        yield uc, snapshot.merge(labels[["customer_id", "default_12m"]], on="customer_id")
