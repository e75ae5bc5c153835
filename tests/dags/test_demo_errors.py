"""When a DAG run of `make demo` fails, the demo says which task failed and prints the task's exception, even
though it hides what tasks print (a real `dag.test()` run of `training` on a Feast repo without data)."""

from __future__ import annotations

import re
import sys

import pytest

from tests.champion import isolated_home
from tests.conftest import PROJECT

sys.path.insert(0, str(PROJECT / "include"))
import demo  # noqa: E402


def test_a_failed_run_prints_the_tasks_exception(tmp_path_factory, airflow_db, capsys) -> None:
    """Also: the task-progress listener prints a line per finished task of the long runs, while the logs stay
    hidden."""
    import io

    from airflow.sdk.listener import get_listener_manager

    from fairway.config import load_usecase
    from fairway.features.store import apply_repo

    progress = io.StringIO()
    listener = demo.show_task_progress(progress)
    with isolated_home(tmp_path_factory, "demo-errors"), pytest.raises(SystemExit) as stopped:
        apply_repo(load_usecase("credit_risk"))
        capsys.readouterr()
        demo.run_dag("training", {"usecase": "credit_risk", "window_end": None, "window_months": 6,
                                  "candidates": ["baseline"]})  # fmt: skip
    get_listener_manager().pm.unregister(listener)
    lines = progress.getvalue().splitlines()
    done = sorted(m.group(1) for m in map(re.compile(r"      training\.(\w+): done in \d+\.\d s").fullmatch, lines) if m)
    assert done == ["candidate_names", "check_catalogue"], lines  # the two tasks without upstream, in either order
    tries = [re.fullmatch(r"      training\.build_training_frame: failed \(try (\d)\) in \d+\.\d s", line) for line in lines[2:]]
    assert all(tries) and [int(t.group(1)) for t in tries if t] == [1, 2, 3], lines
    message = str(stopped.value)
    assert "training" in message and "['build_training_frame']" in message
    assert "RuntimeError: no labels in the offline store of 'credit_risk': run feature_pipeline first" in message
    assert capsys.readouterr().out == ""  # the task output stayed hidden; the reason is in the exit message
