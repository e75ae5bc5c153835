"""The repo works with Feast's own CLI, as a user would run it."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PROJECT

FEAST = shutil.which("feast", path=str(Path(os.sys.executable).parent))


def _feast(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FAIRWAY_HOME": str(home), "FAIRWAY_USECASE": "credit_risk"}
    return subprocess.run([FEAST, "-c", str(PROJECT / "feature_repo"), *args], capture_output=True, text=True, env=env)


@pytest.mark.skipif(FEAST is None, reason="feast CLI not installed beside this interpreter")
def test_feast_apply_runs_clean_and_lists_the_catalogue(home: Path) -> None:
    applied = _feast(home, "apply")
    assert applied.returncode == 0, applied.stderr
    assert "Traceback" not in applied.stderr
    views = _feast(home, "feature-views", "list")
    assert views.returncode == 0, views.stderr
    for name in ("customer_financials", "customer_demographics", "customer_labels"):
        assert name in views.stdout
    services = _feast(home, "feature-services", "list")
    for name in ("credit_model_v1", "fairness_audit_v1", "credit_labels_v1"):
        assert name in services.stdout
    protected = _feast(home, "feature-views", "list", "--tags", "protected:true")
    assert "customer_demographics" in protected.stdout
    assert "customer_financials" not in protected.stdout
