"""The `fairway` command line, run as a user runs it (a subprocess)."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path


def _fairway(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FAIRWAY_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "fairway.cli", *args], capture_output=True, text=True, env=env)


def test_generate_validate_apply_ingest_and_counts(home: Path) -> None:
    generated = _fairway(home, "data", "generate", "--customers", "150", "--months", "2", "--seed", "3")
    assert generated.returncode == 0, generated.stderr
    assert "2024-02: " in generated.stdout
    files = sorted((home / "data/raw/credit_risk").rglob("*.parquet"))
    assert [f.relative_to(home / "data/raw/credit_risk").as_posix() for f in files] == [
        "2024-01/labels.parquet", "2024-01/snapshot.parquet", "2024-02/labels.parquet", "2024-02/snapshot.parquet"
    ]  # fmt: skip
    digest = hashlib.sha256(files[3].read_bytes()).hexdigest()
    again = _fairway(home, "data", "generate", "--customers", "150", "--months", "2", "--seed", "3")
    assert again.returncode == 0 and hashlib.sha256(files[3].read_bytes()).hexdigest() == digest

    validated = _fairway(home, "data", "validate")
    assert validated.returncode == 0, validated.stderr
    assert '"month": "2024-02"' in validated.stdout
    assert _fairway(home, "features", "apply").returncode == 0
    ingested = _fairway(home, "features", "ingest", "--month", "2024-02")
    assert ingested.returncode == 0, ingested.stderr
    counts = _fairway(home, "features", "counts")
    assert "2024-02" in counts.stdout and "customer_financials" in counts.stdout


def test_errors_are_reported_without_a_traceback(home: Path, tmp_path: Path) -> None:
    missing = _fairway(home, "data", "validate", "--month", "2024-05")
    assert missing.returncode == 1
    assert "raw data for 2024-05 is missing" in missing.stderr and "Traceback" not in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad Name\n")
    config = _fairway(home, "config", "validate", str(bad))
    assert config.returncode == 2
    assert "name: String should match pattern" in config.stderr
    assert "entity: Field required" in config.stderr


def test_status_without_a_registry_says_there_is_no_champion(home: Path) -> None:
    text = _fairway(home, "status")
    assert text.returncode == 0, text.stderr
    assert "champion: none" in text.stdout
    as_json = _fairway(home, "status", "--json")
    import json

    report = json.loads(as_json.stdout)
    assert report["champion"] is None and report["versions"] == [] and report["model"] == "credit-risk"
