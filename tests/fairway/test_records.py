"""fairway.records: the pseudonym and the input fingerprint are the documented hashes, whatever the speed-ups; the
decision log stores what SQLAlchemy's insert stores, survives workers racing to create it, and a failed write is
DecisionNotRecorded."""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy

from fairway.records import DecisionLog, input_fingerprints, pseudonymise


def test_pseudonym_is_the_hmac_sha256_of_the_id_under_the_key(monkeypatch) -> None:
    monkeypatch.setenv("FAIRWAY_PSEUDONYM_KEY", "a-test-key")
    ids = pd.Series([7, 100042, 3], index=[5, 6, 9])
    expected = [hmac.new(b"a-test-key", str(i).encode(), hashlib.sha256).hexdigest()[:32] for i in ids]
    result = pseudonymise(ids)
    assert list(result) == expected and list(result.index) == [5, 6, 9]
    monkeypatch.setenv("FAIRWAY_PSEUDONYM_KEY", "another-key")
    assert not set(pseudonymise(ids)) & set(expected)  # without the key, no link


def test_pseudonym_key_is_created_once_under_fairway_home(home, monkeypatch) -> None:
    monkeypatch.delenv("FAIRWAY_PSEUDONYM_KEY", raising=False)
    first = pseudonymise(pd.Series(["c1"]))
    key_file = home / "secrets" / "pseudonym.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert pseudonymise(pd.Series(["c1"])).equals(first)


def test_input_fingerprint_is_the_sha256_of_the_inputs_in_column_order() -> None:
    inputs = pd.DataFrame({"income": [2500.5, 1800.0], "housing": ["rent", "own"], "tenure_months": [12, 240]})
    expected = [hashlib.sha256("\x1f".join(map(str, row)).encode()).hexdigest()[:32]
                for row in inputs.astype(str).itertuples(index=False)]  # fmt: skip
    assert list(input_fingerprints(inputs)) == expected
    swapped = inputs[["housing", "income", "tenure_months"]]
    assert list(input_fingerprints(swapped)) != expected


def _decision(request_id: str) -> dict:
    return {"request_id": request_id, "usecase": "credit_risk", "endpoint": "predict", "subject": "s" * 32,
            "input_fingerprint": "f" * 32, "score": 0.25, "decision": "approve", "threshold": 0.5,
            "model_name": "credit-risk", "model_version": "3", "recorded_at": datetime(2026, 1, 2, 3, 4, 5, 6, UTC),
            "features_event_time": datetime(2025, 12, 1, tzinfo=UTC), "features_stale": True, "reasons": "[]"}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def decision_log(request, tmp_path):
    if request.param == "sqlite":
        yield DecisionLog(f"sqlite:///{tmp_path / 'decisions.db'}")
        return
    from tests.postgres import postgres_server

    with postgres_server() as url:
        yield DecisionLog(url)


def test_decision_log_keeps_every_concurrent_row_and_refuses_duplicates(decision_log) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: decision_log.append(_decision(f"r{i}")), range(400)))
    rows = decision_log.read()
    assert len(rows) == 400 and rows["request_id"].is_unique
    assert rows["recorded_at"].notna().all() and set(rows["model_version"]) == {"3"}
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        decision_log.append(_decision("r7"))  # a request is recorded once
    assert len(decision_log.read()) == 400
    # what a reused id's 409 names: the earlier decision, not its person, score or reasons
    assert decision_log.earlier("r7") == {"endpoint": "predict", "decision": "approve", "model_version": "3",
                                          "recorded_at": "2026-01-02T03:04:05.000006+00:00"}  # fmt: skip
    assert decision_log.earlier("r400") is None


def test_decision_log_opened_by_workers_racing_to_create_it(tmp_path, monkeypatch) -> None:
    """Two workers open a new log at once: both see no table, the second CREATE fails with "already exists"."""
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    first = DecisionLog(url)
    first.append(_decision("r1"))
    create_all = sqlalchemy.MetaData.create_all

    def checked_before_the_other_created(self, bind, tables=None, checkfirst=True) -> None:
        create_all(self, bind, tables=tables, checkfirst=False)

    monkeypatch.setattr(sqlalchemy.MetaData, "create_all", checked_before_the_other_created)
    second = DecisionLog(url)  # raised "table fairway_decisions already exists" before
    second.append(_decision("r2"))
    assert list(first.read()["request_id"]) == ["r1", "r2"]
    broken = tmp_path / "not-a-directory"
    broken.write_text("")
    with pytest.raises(sqlalchemy.exc.OperationalError):
        DecisionLog(f"sqlite:///{broken}/decisions.db")  # a real failure is still raised


def test_an_append_stores_what_sqlalchemys_insert_stores(decision_log) -> None:
    from fairway.records import DECISION_COLUMNS

    decision_log.append(_decision("precompiled"))
    with decision_log.engine.begin() as connection:  # the statement the log built per request before
        connection.execute(decision_log.table.insert().values(**{**_decision("built"), "request_id": "built"}))
    columns = [c for c in DECISION_COLUMNS if c != "request_id"]
    with decision_log.engine.connect() as connection:
        stored = {row[0]: tuple(row[1:]) for row in connection.exec_driver_sql(
            f"SELECT request_id, {', '.join(columns)} FROM fairway_decisions")}  # fmt: skip
    assert stored["precompiled"] == stored["built"]
    assert decision_log.read().set_index("request_id").loc["precompiled", "features_stale"] == True  # noqa: E712


def test_a_failed_append_raises_and_the_scorer_reports_decision_not_recorded(decision_log) -> None:
    from fairway.explanations import ReasonCodes
    from fairway.serving import DecisionNotRecorded, OnlineScorer

    decision_log.append(_decision("first"))
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        decision_log.append(_decision("first"))
    with decision_log.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE fairway_decisions")
    with pytest.raises(sqlalchemy.exc.DBAPIError):
        decision_log.append(_decision("second"))
    scorer = OnlineScorer.__new__(OnlineScorer)  # only what decide() needs: a model that answers 0.25
    scorer.compiled, scorer.columns, scorer.threshold, scorer.log = (lambda values: 0.25), ["a"], 0.5, decision_log
    scorer.explain = ReasonCodes(["a"], {"a": 1.0}, lambda f: np.full(len(f), 0.25), scorer.compiled)
    scorer.model_name, scorer.model_version, scorer.uc = "m", "1", type("U", (), {"name": "credit_risk"})()
    with pytest.raises(DecisionNotRecorded):
        scorer.decide("predict_features", {"a": 2.0}, None)
