"""The promotion ledger on its own: appends chain and sign, every kind of tampering is named, concurrent writers
never share a place in the chain, and the champion is what the entries say."""

from __future__ import annotations

import concurrent.futures
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from fairway import ledger, settings

EVIDENCE = {"model_sha256": "a" * 64, "gate_report_sha256": "b" * 64}


@pytest.fixture
def book(home, monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.delenv("FAIRWAY_LEDGER_URL", raising=False)
    monkeypatch.delenv("FAIRWAY_DECISION_LOG_URL", raising=False)
    monkeypatch.setenv("FAIRWAY_LEDGER_KEY", "ledger-test-key")
    return home / "records" / "ledger.db"


def _promote(version: str, actor: str = "dana") -> None:
    ledger.append("credit_risk", "credit-risk", version, ledger.GATE, "fairway:gate", {"decision": "pass"})
    ledger.append("credit_risk", "credit-risk", version, ledger.PROMOTION, actor, EVIDENCE)


def test_entries_chain_and_replay_to_the_champion(book) -> None:
    _promote("1")
    _promote("2")
    ledger.append("credit_risk", "credit-risk", "2", ledger.STOP, "cli:ops", {"reason": "complaints spike"})
    found = ledger.entries()
    assert [e.seq for e in found] == [1, 2, 3, 4, 5]
    assert found[0].prev_hash == ledger.GENESIS and all(b.prev_hash == a.entry_hash for a, b in zip(found, found[1:], strict=False))
    assert ledger.verify_chain() == []
    state = ledger.state("credit-risk")
    assert state.version == "2" and state.serving is None and set(state.approved_versions) == {"1", "2"}
    assert state.stop_reason().startswith("model stopped by cli:ops at ") and state.stop_reason().endswith(
        ": complaints spike"
    )
    assert ledger.state("other-model").version is None


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("UPDATE fairway_ledger SET version = '9' WHERE seq = 2", "#2: its fields were changed"),
        ("UPDATE fairway_ledger SET payload = replace(payload, 'aaaa', 'ffff') WHERE seq = 2", "#2: its fields were changed"),
        ("UPDATE fairway_ledger SET actor = 'mallory' WHERE seq = 4", "#4: its fields were changed"),
        ("DELETE FROM fairway_ledger WHERE seq = 2", "#3: expected entry #2"),
        ("UPDATE fairway_ledger SET signature = '" + "0" * 64 + "' WHERE seq = 1", "#1: signature is not the deployment's"),
    ],
)
def test_every_edit_of_a_row_is_named(book, sql: str, named: str) -> None:
    _promote("1")
    _promote("2")
    with sqlite3.connect(book) as db:
        db.execute(sql)
    problems = ledger.verify_chain()
    assert any(p.startswith(named) for p in problems), problems
    with pytest.raises(ledger.LedgerError, match="does not verify"):
        ledger.state("credit-risk")


def test_a_rewritten_entry_with_a_recomputed_hash_fails_on_its_signature(book) -> None:
    """Whoever can write the table but lacks the deployment key can recompute hashes, not signatures."""
    _promote("1")
    row = ledger.entries()[1]
    forged = {**row.__dict__, "actor": "mallory"}
    forged_hash = ledger._hash(ledger._hashed_fields(forged))
    with sqlite3.connect(book) as db:
        db.execute("UPDATE fairway_ledger SET actor = 'mallory', entry_hash = ? WHERE seq = 2", (forged_hash,))
    assert ledger.verify_chain() == ["#2: signature is not the deployment's (forged or another key)"]


def test_another_key_does_not_verify(book, monkeypatch) -> None:
    _promote("1")
    monkeypatch.setenv("FAIRWAY_LEDGER_KEY", "someone-elses-key")
    assert len(ledger.verify_chain()) == 2


def test_concurrent_writers_each_get_their_own_place(book) -> None:
    """Four processes append 10 entries each at once: 40 entries, one chain."""
    script = (
        "import sys; from fairway import ledger\n"
        "for i in range(10): ledger.append('credit_risk', 'credit-risk', sys.argv[1], ledger.GATE, 'w', {'i': i})\n"
    )
    env = {**os.environ}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda w: subprocess.run([sys.executable, "-c", script, str(w)], env=env,
                                                      capture_output=True, text=True), range(4)))  # fmt: skip
    assert all(r.returncode == 0 for r in runs), [r.stderr[-500:] for r in runs]
    found = ledger.entries()
    assert [e.seq for e in found] == list(range(1, 41)) and ledger.verify_chain(found) == []
    assert sorted(json.dumps(e.payload) for e in found if e.version == "2") == sorted(
        json.dumps({"i": i}) for i in range(10)
    )


def test_the_key_file_is_created_once_and_private(home, monkeypatch) -> None:
    monkeypatch.delenv("FAIRWAY_LEDGER_KEY", raising=False)
    first = settings.secret("ledger")
    path = home / "secrets" / "ledger.key"
    assert settings.secret("ledger") == first and path.stat().st_mode & 0o777 == 0o600


def test_a_placeholder_secret_is_refused(home, monkeypatch) -> None:
    monkeypatch.setenv("FAIRWAY_LEDGER_KEY", "CHANGE-ME")
    with pytest.raises(settings.SettingsError, match="FAIRWAY_LEDGER_KEY still holds the CHANGE-ME placeholder"):
        ledger.append("credit_risk", "credit-risk", "1", ledger.GATE, "x", {})
