"""The champion nobody can forge: against a real MLflow registry (SQLite), a real champion and a gate-rejected
version, each attack an MLflow client (or someone with the records database) can make is caught by batch
inference (fails with the reason), the service's check (refuses) and `fairway verify` (names it, exit 1).
Re-gating the champion keeps it and its history; a task function works in a fresh process from the settings
alone and writes nothing outside FAIRWAY_HOME."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairway import ledger, promotion, registry, verification
from fairway.cli import main as cli
from fairway.config import load_usecase
from fairway.inference import ScoringError, pin_champion, score_month
from tests.champion import feature_store, isolated_home, make_champion
from tests.conftest import PROJECT


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[dict]:
    """v1: champion (Reweighing, approved); v2: the biased baseline, rejected by the gate."""
    from fairway.training import build_training_frame, register_best, train_candidate

    with isolated_home(tmp_path_factory, "trust-home") as home, pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAIRWAY_LEDGER_KEY", "trust-test-key")
        uc = load_usecase("credit_risk")
        months = feature_store(uc, customers=1200, months=5, seed=11)
        champion = make_champion(uc, months[-2], 3)
        frame = build_training_frame(uc, months[-2], 3)
        rejected = register_best(uc, [train_candidate(uc, frame, "baseline")])["version"]
        gated = promotion.gate_candidate(uc, rejected)
        assert gated["decision"] == "reject"
        promotion.reject_candidate(uc, gated)
        yield {"uc": uc, "home": home, "champion": champion, "rejected": rejected, "month": months[-1]}


def _caught(world: dict, named: str) -> None:
    """Batch inference, the service's start check and `fairway verify` each refuse, naming `named`."""
    uc = world["uc"]
    with pytest.raises(ScoringError, match=named):
        score_month(uc, world["month"], pin_champion(uc), "attack")
    assert not (world["home"] / "records" / uc.name / "predictions" / f"{world['month']}.parquet").exists()
    with _model_folder(uc, world["champion"]) as folder:
        refused = verification.serving_refusal(uc, world["champion"], folder)
    assert refused is not None
    result = verification.verify(uc)
    assert result.problems, "fairway verify found nothing"
    assert cli(["--usecase", uc.name, "verify"]) == 1


@contextlib.contextmanager
def _model_folder(uc, version: str) -> Iterator[Path]:  # noqa: ANN001
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        yield registry._download_model(uc, version, Path(tmp))


def test_untouched_the_champion_scores_and_verifies(world) -> None:
    uc = world["uc"]
    pinned = pin_champion(uc)
    assert pinned["version"] == world["champion"] and len(pinned["model_sha256"]) == 64
    with _model_folder(uc, world["champion"]) as folder:
        assert verification.serving_refusal(uc, world["champion"], folder) is None
        assert verification.serving_refusal(uc, world["rejected"], folder) is not None  # a bento of v2 would refuse
    result = verification.verify(uc)
    assert result.problems == [] and any("chain of" in c for c in result.checked)
    assert cli(["--usecase", uc.name, "verify"]) == 0


def test_moving_the_alias_by_hand_is_caught(world) -> None:
    uc, mlc = world["uc"], registry.client()
    mlc.set_registered_model_alias(uc.model_name, registry.CHAMPION, world["rejected"])
    mlc.set_model_version_tag(uc.model_name, world["rejected"], "fairway.gate_decision", "pass")  # and forge the tag
    try:
        with pytest.raises(ScoringError, match="alias was changed outside Fairway"):
            pin_champion(uc)
        problems = verification.verify(uc).problems
        assert any(p.startswith(f"MLflow alias 'champion' points at {world['rejected']}") for p in problems), problems
        assert any("forged tag" in p and p.startswith(f"v{world['rejected']}") for p in problems), problems
        assert cli(["--usecase", uc.name, "verify"]) == 1
        assert cli(["--usecase", uc.name, "serve"]) == 1  # the service refuses to start
        # the running service's check is the ledger's: the rejected version never answers
        with _model_folder(uc, world["rejected"]) as folder:
            assert "champion is v" + world["champion"] in verification.serving_refusal(uc, world["rejected"], folder)
    finally:
        mlc.set_registered_model_alias(uc.model_name, registry.CHAMPION, world["champion"])
        mlc.set_model_version_tag(uc.model_name, world["rejected"], "fairway.gate_decision", "reject")
    assert verification.verify(uc).problems == []


def test_editing_the_stored_gate_report_is_caught(world, tmp_path) -> None:
    uc, mlc = world["uc"], registry.client()
    entry = ledger.state(uc.model_name).since
    path = registry.gate_report_path(entry.payload["gate_report_sha256"])
    original = registry.download(entry.payload["run_id"], path, tmp_path / "orig")
    report = json.loads(original.read_text())
    report["thresholds"]["disparate_impact_min"] = 0.1  # looser than what the approver saw
    edited = tmp_path / "edit" / "gate_report.json"
    edited.parent.mkdir()
    edited.write_text(json.dumps(report, indent=2, sort_keys=True))
    mlc.log_artifact(entry.payload["run_id"], str(edited), path.rsplit("/", 1)[0])
    try:
        _caught(world, "gate report approved for it .* was changed")
        assert any("gate report" in p for p in verification.verify(uc).problems)
    finally:
        mlc.log_artifact(entry.payload["run_id"], str(original), path.rsplit("/", 1)[0])
    assert verification.verify(uc).problems == []


def test_editing_a_ledger_row_is_caught(world) -> None:
    uc = world["uc"]
    db = world["home"] / "records" / "ledger.db"
    with sqlite3.connect(db) as connection:
        seq, actor = connection.execute(
            "SELECT seq, actor FROM fairway_ledger WHERE action = 'promotion' ORDER BY seq DESC"
        ).fetchone()
        connection.execute("UPDATE fairway_ledger SET actor = 'mallory' WHERE seq = ?", (seq,))
    try:
        _caught(world, "promotion ledger does not verify")
        assert any(p.startswith(f"#{seq}: its fields were changed") for p in verification.verify(uc).problems)
    finally:
        with sqlite3.connect(db) as connection:
            connection.execute("UPDATE fairway_ledger SET actor = ? WHERE seq = ?", (actor, seq))
    assert verification.verify(uc).problems == []


def test_changing_the_model_files_is_caught(world) -> None:
    uc = world["uc"]
    mv = registry.get_version(uc, world["champion"])
    stored = Path(registry.client().get_model_version_download_uri(uc.model_name, mv.version).removeprefix("file://"))
    target = stored / "requirements.txt"
    original = target.read_bytes()
    target.write_bytes(original + b"evil-package==6.6.6\n")
    try:
        with pytest.raises(ScoringError, match="model files hash to"):
            score_month(uc, world["month"], pin_champion(uc), "attack")
        assert any("model files changed" in p for p in verification.verify(uc).problems)
        with _model_folder(uc, world["champion"]) as folder:
            assert "packaged model files" in verification.serving_refusal(uc, world["champion"], folder)
    finally:
        target.write_bytes(original)
    assert verification.verify(uc).problems == []


def test_regating_the_champion_keeps_it_and_its_history(world) -> None:
    uc = world["uc"]
    before = registry.get_version(uc, world["champion"]).tags
    entries_before = len(ledger.entries(uc.model_name))
    gated = promotion.gate_candidate(uc, world["champion"])
    assert gated["decision"] == "pass"
    again = promotion.approval_from_response(
        {"chosen_options": ["Approve"], "params_input": {"comment": "second look"}, "responded_at": "2031-02-01T00:00:00+00:00",
         "responded_by_user": {"id": "z", "name": "zoe"}}, gated)  # fmt: skip
    result = promotion.promote(uc, gated, again)
    assert result["changed"] is False and "already champion" in result["message"]
    after = registry.get_version(uc, world["champion"]).tags
    assert after["fairway.status"] == "champion" and "fairway.superseded_by" not in after
    approval = {k: v for k, v in before.items() if k.startswith("fairway.approval.")}
    assert approval and {k: after[k] for k in approval} == approval  # the first approval record stands
    added = ledger.entries(uc.model_name)[entries_before:]
    assert [(e.action, e.actor) for e in added] == [("gate", "fairway:gate"), ("approval", "zoe")]
    assert ledger.state(uc.model_name).serving == world["champion"]


def test_stop_refuses_scoring_and_rollback_restores_the_version(world) -> None:
    uc = world["uc"]
    stopped = promotion.stop(uc, "complaints about declines in the east", "cli:ops")
    try:
        assert stopped["changed"] and "model stopped by cli:ops at " in stopped["message"]
        with pytest.raises(ScoringError, match="model stopped by cli:ops at .*: complaints about declines"):
            pin_champion(uc)
        assert registry.version_by_alias(uc, registry.CHAMPION) is None
        assert registry.status(uc)["champion"]["stopped"].endswith("complaints about declines in the east")
        assert verification.verify(uc).problems == []  # a stop is a legitimate state, the alias mirrors it
        with pytest.raises(registry.PromotionRefused, match="never an approved champion"):
            promotion.rollback_request(uc, world["rejected"], "bring back the baseline")
        request = promotion.rollback_request(uc, None, "cause found: a data feed, fixed")
        assert request["version"] == world["champion"]
        with pytest.raises(registry.PromotionRefused, match="a person's approval"):
            promotion.rollback(uc, request, {"decision": "approved", "approver": "policy:auto", "decided_at": "x",
                                             "comment": "", "mode": "auto", "evidence_sha256": request["evidence_sha256"]})  # fmt: skip
    finally:
        approval = promotion.approval_from_response(
            {"chosen_options": ["Approve"], "params_input": {}, "responded_at": "2031-03-01T00:00:00+00:00",
             "responded_by_user": {"id": "o", "name": "olga"}}, request)  # fmt: skip
        rolled = promotion.rollback(uc, request, approval)
    assert rolled["changed"] and pin_champion(uc)["version"] == world["champion"]
    assert ledger.entries(uc.model_name)[-1].action == "rollback" and ledger.entries(uc.model_name)[-1].actor == "olga"
    assert verification.verify(uc).problems == []


def test_a_task_function_works_in_a_fresh_process_from_the_settings_alone(world, tmp_path) -> None:
    """What a real scheduler does: a new process, nothing set up but the deployment's settings, another working
    directory. The gate runs there, and nothing is written outside FAIRWAY_HOME (no stray mlflow.db)."""
    uc = world["uc"]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT, capture_output=True, text=True).stdout
    # the registry where FAIRWAY_HOME alone puts it (no MLFLOW_TRACKING_URI): a copy of the module's
    (world["home"] / "mlflow").mkdir(exist_ok=True)
    shutil.copy(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"), world["home"] / "mlflow" / "mlflow.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FAIRWAY_"))}
    env.update(FAIRWAY_HOME=str(world["home"]), FAIRWAY_LEDGER_KEY=os.environ["FAIRWAY_LEDGER_KEY"],
               FAIRWAY_PSEUDONYM_KEY="test-key-not-secret")  # fmt: skip
    run_id = registry.get_version(uc, world["champion"]).run_id
    # run_metrics first: the call that failed under the scheduler ("Run ... not found", a stray ./mlflow.db)
    script = ("import json; from fairway import registry; from fairway.promotion import gate_candidate\n"
              "from fairway.inference import pin_champion\n"
              f"print(json.dumps([registry.run_metrics('{run_id}').auc > 0.5, "
              f"gate_candidate('credit_risk', '{world['rejected']}')['decision'], pin_champion('credit_risk')['version']]))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [True, "reject", world["champion"]]
    assert list(cwd.iterdir()) == []
    after = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT, capture_output=True, text=True).stdout
    assert after == before
