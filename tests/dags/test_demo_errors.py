"""When a DAG run of `make demo` fails, the demo says which task failed and prints the task's exception, even
though it hides what tasks print (a real `dag.test()` run of `training` on a Feast repo without data)."""

from __future__ import annotations

import sys

import pytest

from tests.champion import isolated_home
from tests.conftest import PROJECT

sys.path.insert(0, str(PROJECT / "include"))
import demo  # noqa: E402


def test_a_failed_run_prints_the_tasks_exception(tmp_path_factory, airflow_db, capsys) -> None:
    from fairway.config import load_usecase
    from fairway.features.store import apply_repo

    with isolated_home(tmp_path_factory, "demo-errors"), pytest.raises(SystemExit) as stopped:
        apply_repo(load_usecase("credit_risk"))
        capsys.readouterr()
        demo.run_dag("training", {"usecase": "credit_risk", "window_end": None, "window_months": 6,
                                  "candidates": ["baseline"]})  # fmt: skip
    message = str(stopped.value)
    assert "training" in message and "['build_training_frame']" in message
    assert "RuntimeError: no labels in the offline store of 'credit_risk': run feature_pipeline first" in message
    assert capsys.readouterr().out == ""  # the task output stayed hidden; the reason is in the exit message
