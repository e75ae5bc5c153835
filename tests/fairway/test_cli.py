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


def test_usecase_init_with_the_options_for_missing_values_groups_and_delays(home: Path, tmp_path: Path) -> None:
    rows = ["Hours,Work,Note,Group,Sex,Outcome"]
    for i in range(600):
        work = "?" if i % 20 == 0 else ["private", "public", "self"][i % 3]
        group = ["a", "b", "c", "tiny1", "tiny2"][0 if i % 10 < 6 else (1 if i % 10 < 8 else 2)]
        group = "tiny1" if i % 97 == 0 else ("tiny2" if i % 89 == 0 else group)
        rows.append(
            f"{'' if i % 25 == 0 else i % 60},{work},n{i % 7},{group},{'fm'[i % 2]},{'bad' if i % 4 == 0 else 'good'}"
        )
    path = tmp_path / "file.csv"
    path.write_text("\n".join(rows) + "\n")
    done = _fairway(home, "usecase", "init", "--name", "opts", "--csv", str(path), "--target", "Outcome",
                    "--protected", "Group,Sex", "--na-values", "?", "--drop-columns", "Note",
                    "--merge", "group=tiny1,tiny2,c:other", "--reference", "Sex=m", "--outcome-delay-months", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "dropped at import (--drop-columns): 'Note'" in done.stdout and "cells '?'" not in done.stdout
    assert "outcomes are delivered 2 months after their snapshot (label.available_after_months: 2)" in done.stdout
    config = (home / "usecases" / "opts.yaml").read_text()
    assert "nullable: true" in config and "available_after_months: 2" in config
    assert "reference: m" in config and "- tiny2" in config
    refused = _fairway(home, "usecase", "init", "--name", "opts2", "--csv", str(path), "--target", "Outcome",
                       "--protected", "Group", "--merge", "group=a")  # fmt: skip
    assert (
        refused.returncode == 1
        and "error: --merge 'group=a' is not ATTRIBUTE=VALUE,VALUE[,...]:GROUP" in refused.stderr
    )


def test_version_options_after_the_subcommand_and_a_reader_that_leaves(home: Path) -> None:
    version = _fairway(home, "--version")
    assert version.returncode == 0 and version.stdout.strip().startswith("fairway 0.")
    after = _fairway(home, "status", "--usecase", "credit_risk", "--json", "-v")  # options where users type them
    assert after.returncode == 0, after.stderr
    unknown_after = _fairway(home, "status", "--usecase", "no_such_case")
    unknown_before = _fairway(home, "--usecase", "no_such_case", "status")
    assert unknown_after.returncode == unknown_before.returncode != 0
    assert unknown_after.stderr == unknown_before.stderr and "unrecognized arguments" not in unknown_after.stderr
    # `fairway status | head -0`: the reader is gone before the first line; no traceback, SIGPIPE's status
    process = subprocess.Popen([sys.executable, "-m", "fairway.cli", "status"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "FAIRWAY_HOME": str(home)})  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait() == 141 and "Traceback" not in errors and "BrokenPipe" not in errors, errors
