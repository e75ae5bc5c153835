"""`make up` is not silent while a component starts: a line per interval of waiting, naming the log."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import PROJECT

sys.path.insert(0, str(PROJECT / "include"))
import local_stack  # noqa: E402


def test_waiting_for_a_component_prints_progress_until_it_is_ready(monkeypatch, capsys) -> None:
    monkeypatch.setattr(local_stack, "PROGRESS_EVERY", 0.05)
    answers = iter([False] * 6 + [True])
    with subprocess.Popen(["sleep", "30"]) as process:
        try:
            local_stack.wait_ready(process, lambda: next(answers), "airflow (api-server)", 60, "run/airflow.log", 0.02)
        finally:
            process.kill()
    lines = capsys.readouterr().out.splitlines()
    assert 2 <= len(lines) <= 6, lines
    assert all(line.startswith("  ... waiting for airflow (api-server): ") and line.endswith("of at most 60 "
                                                                                             "(log run/airflow.log)")
               for line in lines), lines  # fmt: skip


def test_a_component_that_exits_while_waited_for_names_its_log(capsys) -> None:
    with subprocess.Popen(["false"]) as process:
        process.wait()
        with pytest.raises(RuntimeError, match=r"false exited with 1; see run/x\.log"):
            local_stack.wait_ready(process, lambda: False, "x", 60, "run/x.log", 0.01)
    assert capsys.readouterr().out == ""
