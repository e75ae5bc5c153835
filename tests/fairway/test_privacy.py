"""fairway.privacy: erasure of one person from every store (state built as the DAGs build it) and retention.

The erasure test scans every file under FAIRWAY_HOME afterwards: parquet files decoded cell by cell, every
other file (SQLite databases and their WAL included) as raw bytes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from fairway import privacy
from fairway.config import load_usecase
from fairway.data import read_month, to_arrow, write_parquet_atomic
from fairway.features.store import get_store, offline_partition, write_offline_partition
from fairway.records import (
    DECISION_COLUMNS,
    PREDICTION_COLUMNS,
    DecisionLog,
    decision_log_url,
    pseudonym,
    write_predictions,
)
from fairway.training import MONTH_COLUMN, build_training_frame, read_frame
from tests.champion import feature_store, isolated_home, make_champion

# the free-text reasons of reviews of decisions (fairway.review): the person's must leave the database's bytes
PERSON_REASON = "payslips checked by phone with the applicant, ref 7Q4XK-review"
OTHER_REASON = "income confirmed by the employer, ref 9ZP2M-review"
MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


# --- scanning FAIRWAY_HOME ---------------------------------------------------------------------------------


def _files(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*") if p.is_file())


def _found(path: Path, needles: list[str]) -> set[str]:
    """The needles in a file: parquet decoded and checked cell by cell, anything else as raw bytes."""
    if path.suffix == ".parquet":
        text = pd.read_parquet(path).astype(str)
        return {n for n in needles if text.apply(lambda column, n=n: column.str.contains(n, regex=False)).any().any()}
    content = path.read_bytes()
    return {n for n in needles if n.encode() in content}


def _scan(home: Path, needles: list[str]) -> dict[str, set[str]]:
    found = {str(p.relative_to(home)): _found(p, needles) for p in _files(home)}
    return {path: hits for path, hits in found.items() if hits}


def _digests(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest() for p in _files(home)}


def _family(path: str) -> str:
    """An SQLite database and its side files (-wal, -shm, -journal) are one store."""
    for suffix in SQLITE_SIDE_FILES:
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def _decision(uc, subject: str, recorded_at: pd.Timestamp | None = None, usecase: str | None = None) -> dict:
    row = {"request_id": uuid.uuid4().hex, "usecase": usecase or uc.name, "endpoint": "predict", "subject": subject,
           "input_fingerprint": "f" * 32, "score": 0.25, "decision": "approve", "threshold": 0.5,
           "model_name": uc.model_name, "model_version": "1",
           "recorded_at": recorded_at.to_pydatetime() if recorded_at is not None else None}  # fmt: skip
    return {k: v for k, v in row.items() if k in DECISION_COLUMNS}


def _online_rows(home: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(home / "feast" / "credit_risk" / "online.db") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f'SELECT entity_key, feature_name, value, event_ts FROM "{t}" ORDER BY 1, 2').fetchall()
                for t in tables}  # fmt: skip


# --- erasure of one person, after the lifecycle ------------------------------------------------------------


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory) -> dict:
    """Six months in both stores (online: the last two), a champion trained on 2024-01..03 (its frame under
    datasets/), months 4-6 scored (prediction records), monitoring of 2024-06 (reports, MLflow run), decision-log
    rows for the person and for others with a review of one decision of each (fairway.review), and an Airflow task
    log that names the person (a failed validation)."""
    from fairway.inference import pin_champion, score_month
    from fairway.monitoring import check_drift, check_outcomes, record_month
    from fairway.review import record_review

    with isolated_home(tmp_path_factory, "privacy-home") as home:
        uc = load_usecase("credit_risk")
        feature_store(uc, 1500, 6, 5, None, online_months=2)
        version = make_champion(uc, "2024-04", 3)
        pinned = pin_champion(uc)
        for month in MONTHS[3:]:
            score_month(uc, month, pinned, f"run-{month}")
        record_month(uc.name, check_drift(uc, "2024-06"), check_outcomes(uc, "2024-06"), "run-monitoring")
        present = [set(read_month(uc, m)[0]["customer_id"]) for m in MONTHS]
        person = sorted(set.intersection(*present))[17]  # in every month, both stores, every record
        others = sorted(set.intersection(*present) - {person})[:5]
        log = DecisionLog(decision_log_url(uc))  # kept open, as the service keeps it
        decisions = [_decision(uc, s) for s in [pseudonym(person), *map(pseudonym, others), pseudonym(person)]]
        for row in decisions:
            log.append(row)
        reviewed = {"person": decisions[0]["request_id"], "other": decisions[1]["request_id"]}
        record_review(uc, reviewed["person"], "decline", by="A. Reviewer", reason=PERSON_REASON)
        record_review(uc, reviewed["other"], "decline", by="A. Reviewer", reason=OTHER_REASON, kind="contest")
        task_log = home / "airflow/logs/dag_id=feature_pipeline/run_id=manual__1/task_id=validate_month/attempt=1.log"
        task_log.parent.mkdir(parents=True)
        task_log.write_text(
            json.dumps({"event": "credit_risk 2024-03: 2 problem(s) in the raw data:\n  - snapshot.parquet: column "
                        f"'debt_ratio': 2 row(s) are below the minimum 0: row 5 (customer_id={person}), row 9 "
                        f"(customer_id={others[0]})", "level": "error"}) + "\n"  # fmt: skip
        )
        yield {"home": home, "uc": uc, "person": person, "others": others, "version": version, "log": log,
               "reviewed": reviewed}  # fmt: skip
        log.engine.dispose()


@pytest.fixture(scope="module")
def erased(lifecycle) -> dict:
    home, uc, person = lifecycle["home"], lifecycle["uc"], lifecycle["person"]
    needles = [person, pseudonym(person)]
    before = {
        "scan": _scan(home, needles),
        "digests": _digests(home),
        "parquet": {str(p.relative_to(home)): pd.read_parquet(p) for p in _files(home) if p.suffix == ".parquet"},
        "online": _online_rows(home),
        "decisions": lifecycle["log"].read(),
        "reasons": _scan(home, [PERSON_REASON, OTHER_REASON]),
    }
    result = privacy.erase(uc, person)
    return {**lifecycle, "needles": needles, "before": before, "result": result}


def test_the_person_was_everywhere_before(erased) -> None:
    """The scan is not vacuous: before the erasure it finds the person in every store."""
    found = erased["before"]["scan"]
    person, subject = erased["needles"]
    expected = ["data/raw/credit_risk/2024-03/snapshot.parquet", "data/raw/credit_risk/2024-03/labels.parquet",
                "data/offline/credit_risk/customer_financials/2024-06.parquet",
                "data/offline/credit_risk/customer_demographics/2024-01.parquet",
                "data/offline/credit_risk/customer_labels/2024-06.parquet", "feast/credit_risk/online.db",
                "records/credit_risk/predictions/2024-05.parquet"]  # fmt: skip
    for path in expected:
        assert path in found, path
    assert any(p.startswith("datasets/credit_risk/") and subject in hits for p, hits in found.items())
    assert not any(p.startswith("datasets/credit_risk/") and person in hits for p, hits in found.items()), \
        "training frames hold the pseudonym, never the id"
    assert any(p.startswith("records/credit_risk/decisions.db") and subject in hits for p, hits in found.items())
    assert any(p.startswith("airflow/logs/") and person in hits for p, hits in found.items())


def test_after_erasure_neither_the_id_nor_the_pseudonym_is_anywhere(erased) -> None:
    assert erased["result"]["erased"] is True
    assert _scan(erased["home"], erased["needles"]) == {}


def test_every_other_record_is_unchanged(erased) -> None:
    home, person = erased["home"], erased["person"]
    subject = pseudonym(person)
    before = erased["before"]
    for path, frame in before["parquet"].items():
        expected = frame[~frame.isin([person, subject]).any(axis=1)].reset_index(drop=True)
        pd.testing.assert_frame_equal(pd.read_parquet(home / path), expected, obj=path)
    online_after = _online_rows(home)
    for table, rows in before["online"].items():
        assert online_after[table] == [r for r in rows if person.encode() not in r[0]], table
    assert sum(len(rows) for rows in before["online"].values()) > sum(len(rows) for rows in online_after.values())
    decisions = before["decisions"]
    pd.testing.assert_frame_equal(
        erased["log"].read(), decisions[decisions["subject"] != subject].reset_index(drop=True)
    )
    # nothing else changed: every file whose bytes differ held the person (or is that SQLite file's side file)
    after = _digests(home)
    held = {_family(p) for p in before["scan"]}
    changed = {p for p in before["digests"] if after.get(p) != before["digests"][p]}
    assert {_family(p) for p in changed} <= held, sorted({_family(p) for p in changed} - held)
    new = sorted(set(after) - set(before["digests"]))
    receipt = Path(erased["result"]["receipt"]).relative_to(home)
    assert [p for p in new if not p.endswith(privacy.REMOVALS_SUFFIX)] == [str(receipt)]
    log = (home / next(p for p in before["scan"] if p.startswith("airflow/logs/"))).read_text()
    assert erased["others"][0] in log and "customer_id=[erased]" in log


def test_the_receipt_counts_each_store_and_holds_no_personal_data(erased) -> None:
    uc, person = erased["uc"], erased["person"]
    folder = erased["home"] / "records" / "credit_risk" / "erasure"
    [path] = list(folder.iterdir())
    receipt = json.loads(path.read_text())
    removed = receipt["removed"]
    assert removed["raw_snapshot_rows"] == 6 and removed["raw_label_rows"] == 5
    assert removed["offline_rows"] == {"customer_demographics": 6, "customer_financials": 6, "customer_labels": 5}
    assert removed["online_store"] == {"store": "sqlite", "rows": len(uc.features_of_view("customer_financials"))}
    assert removed["prediction_records"] == 3 and removed["decision_log_rows"] == 2
    assert removed["training_frame_rows"] >= 2 and removed["airflow_log_files_scrubbed"] == 1
    assert pd.Timestamp(receipt["erased_at"]).tz is not None
    digest = receipt["erasure_hash"]
    text = path.read_text()
    assert person not in text and pseudonym(person) not in text and pseudonym(person)[:12] not in digest
    assert digest != hashlib.sha256(person.encode()).hexdigest()
    assert digest == privacy.erasure_hash(uc, person) != privacy.erasure_hash(uc, person, b"another key")


def test_the_reviews_of_the_persons_decisions_go_with_them(erased) -> None:
    """The review of the person's decision is deleted, its free-text reason gone from the database's bytes (its
    -wal file included); the review of another person's decision stays as it was."""
    from fairway.review import ReviewLog

    home, uc = erased["home"], erased["uc"]
    database = "records/credit_risk/decisions.db"
    before = erased["before"]["reasons"]
    assert any(_family(p) == database and PERSON_REASON in hits for p, hits in before.items()), before
    assert erased["result"]["removed"]["review_rows"] == 1
    assert erased["result"]["searched"]["reviews of decisions"] == {"table": "fairway_reviews"}
    assert _scan(home, [PERSON_REASON]) == {}
    assert any(_family(p) == database for p in _scan(home, [OTHER_REASON]))
    reviews = ReviewLog(uc)
    try:
        assert reviews.of(erased["reviewed"]["person"]) == []
        [kept] = reviews.of(erased["reviewed"]["other"])
    finally:
        reviews.decisions.engine.dispose()
    assert (kept["reason"], kept["kind"]) == (OTHER_REASON, "contest")
    assert kept["subject"] == pseudonym(erased["others"][0])


def test_a_second_erasure_is_a_no_op_and_writes_nothing(erased) -> None:
    home, uc = erased["home"], erased["uc"]
    listing = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in _files(home)}
    again = privacy.erase(uc, erased["person"])
    assert again["erased"] is False and "already erased" in again["message"]
    assert again["receipt"] == erased["result"]["receipt"]
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in _files(home)} == listing


def test_the_models_and_monitoring_still_work_without_the_person(erased) -> None:
    """The champion's training frame lost the person's rows with a ledger entry: its drift reference loads, a
    month is monitored (records and features agree), and a frame changed otherwise is still refused."""
    from fairway import registry
    from fairway.monitoring import check_drift

    uc = erased["uc"]
    lineage = registry.training_lineage(uc, erased["version"])
    frame = read_frame(lineage)
    assert "customer_id" not in frame and pseudonym(erased["person"]) not in set(frame["subject"])
    assert len(frame) < lineage["rows"]
    assert check_drift(uc, "2024-05")["rows_scored"] == len(read_month(uc, "2024-05")[0])
    path = Path(lineage["path"])
    original = path.read_bytes()
    try:
        write_parquet_atomic(to_arrow(frame.iloc[1:]), path)
        with pytest.raises(RuntimeError, match="changed since it was built"):
            read_frame(lineage)
    finally:
        path.write_bytes(original)


def test_the_model_documentation_says_why_the_model_stays(erased) -> None:
    from fairway.documentation import model_documentation

    text = Path(model_documentation(erased["uc"], erased["version"])["markdown"]).read_text()
    assert "Erasure and retention" in text and "This model stays in use" in text and "after 84 months" in text


def test_ingestion_leaves_an_erased_person_out(erased) -> None:
    """A later delivery that still holds the person (here: the month's raw file as it was before the erasure)
    does not bring them back into the offline store. Runs last: it puts the person back into a raw file."""
    home, uc, person = erased["home"], erased["uc"], erased["person"]
    month = "2024-06"
    for name in ("snapshot.parquet", "labels.parquet"):
        path = f"data/raw/credit_risk/{month}/{name}"
        write_parquet_atomic(to_arrow(erased["before"]["parquet"][path]), home / path)
    assert person in set(read_month(uc, month)[0]["customer_id"])
    write_offline_partition(uc, month)
    for view in uc.feature_views:
        ids = set(pd.read_parquet(offline_partition(uc, view.name, month))["customer_id"])
        assert person not in ids and erased["others"][0] in ids, view.name


# --- Redis, PostgreSQL ---------------------------------------------------------------------------------------


def test_erasure_from_the_redis_online_store(tmp_path_factory) -> None:
    import redis

    from tests.redis_server import redis_server

    with redis_server() as address, isolated_home(tmp_path_factory, "privacy-redis") as home:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FAIRWAY_FEAST_CONFIG", "production")
            mp.setenv("FAIRWAY_FEAST_REGISTRY_URL", f"sqlite:///{home / 'registry.db'}")
            mp.setenv("FAIRWAY_REDIS_CONNECTION", address)
            uc = load_usecase("credit_risk")
            feature_store(uc, 300, 2, 3, online_months=1)
            ids = sorted(read_month(uc, "2024-02")[0]["customer_id"])
            person, others = ids[7], ids[:5]
            store = get_store(uc)

            def online(keys: list[str]) -> pd.DataFrame:
                rows = [{"customer_id": k} for k in keys]
                service = store.get_feature_service("credit_model_v1")
                return store.get_online_features(features=service, entity_rows=rows).to_df().set_index("customer_id")

            before = online(others)
            assert online([person])["income"].notna().all()
            host, port = address.split(":")
            client = redis.Redis(host=host, port=int(port))
            keys = client.dbsize()
            result = privacy.erase(uc, person)
            assert result["removed"]["online_store"] == {"store": "redis", "keys": 1}
            assert client.dbsize() == keys - 1
            assert online([person])["income"].isna().all()
            pd.testing.assert_frame_equal(online(others), before)
            assert not [k for k in client.scan_iter() if person.encode() in k]


def test_decision_log_on_postgresql_erasure_and_retention(home, usecase, monkeypatch) -> None:
    from tests.postgres import postgres_server

    with postgres_server() as url:
        monkeypatch.setenv("FAIRWAY_DECISION_LOG_URL", url)
        monkeypatch.setenv("FAIRWAY_PSEUDONYM_KEY", "test-key-not-secret")
        from fairway.review import ReviewLog, record_review

        log = DecisionLog(url)
        subject = pseudonym("C0000042")
        times = pd.to_datetime(["2024-01-15", "2024-03-31 23:59:59", "2024-04-01", "2024-06-02"], utc=True, format="ISO8601")
        for at in times:
            log.append(theirs := _decision(usecase, subject, at))
            log.append(other := _decision(usecase, pseudonym("C0000043"), at))
        log.append(_decision(usecase, subject, times[0], usecase="another_usecase"))
        record_review(usecase, theirs["request_id"], "decline", by="A. Reviewer", reason=PERSON_REASON)
        record_review(usecase, other["request_id"], "decline", by="A. Reviewer", reason=OTHER_REASON)
        result = privacy.erase(usecase, "C0000042")
        assert result["removed"]["decision_log_rows"] == 4 and result["removed"]["review_rows"] == 1
        reviews = ReviewLog(usecase)
        assert reviews.of(theirs["request_id"]) == [] and len(reviews.of(other["request_id"])) == 1
        reviews.decisions.engine.dispose()
        rows = log.read()
        assert list(rows["subject"]) == [pseudonym("C0000043")] * 4 + [subject]  # the other use case's row stays
        counts = privacy.enforce_retention(usecase, "2031-03")  # cutoff 2024-04-01
        assert counts["decision_log_rows"] == 2
        kept = log.read()
        assert list(kept["recorded_at"].dt.tz_convert("UTC")) == list(times[2:]) + [times[0]]
        log.engine.dispose()


# --- retention ---------------------------------------------------------------------------------------------


@pytest.fixture
def history(home, usecase) -> dict:
    """Six months in both stores (online: months 3-6), a training frame of 2024-02..05, prediction partitions of
    every month and decision rows around the cutoff (as of 2031-03 with 84 months: 2024-04-01)."""
    feature_store(usecase, 400, 6, 11, online_months=4)
    summary = build_training_frame(usecase, "2024-06", 5)
    for month in MONTHS:
        ids = read_month(usecase, month)[0]["customer_id"]
        records = pd.DataFrame({"subject": [pseudonym(i) for i in ids]})
        for column in PREDICTION_COLUMNS[1:]:
            records[column] = 0.5 if column in ("score", "threshold") else month
        write_predictions(usecase, month, records)
    log = DecisionLog(decision_log_url(usecase))
    times = pd.to_datetime(["2024-01-02", "2024-03-31 23:59:59.999", "2024-04-01", "2024-05-20"], utc=True, format="ISO8601")
    for at in times:
        log.append(_decision(usecase, pseudonym("C0000001"), at))
    log.append(_decision(usecase, pseudonym("C0000001"), times[0], usecase="another_usecase"))
    yield {"home": home, "summary": summary, "times": times, "log": log}
    log.engine.dispose()


def test_retention_removes_exactly_what_expired(history, usecase) -> None:
    home, log = history["home"], history["log"]
    frame_before = read_frame(history["summary"])
    online_before = _online_rows(home)["credit_risk_customer_financials"]
    last_month = {}
    for month in MONTHS:
        for customer in read_month(usecase, month)[0]["customer_id"]:
            last_month[customer] = month
    counts = privacy.enforce_retention(usecase, "2031-03")

    kept, expired = MONTHS[3:], MONTHS[:3]
    assert sorted(p.stem for p in (home / "records/credit_risk/predictions").glob("*.parquet")) == kept
    assert counts["prediction_partitions"] == expired
    assert sorted(p.name for p in (home / "data/raw/credit_risk").iterdir()) == kept
    for view in usecase.feature_views:
        assert sorted(p.stem for p in (home / "data/offline/credit_risk" / view.name).glob("*.parquet")) == kept
    rows = log.read()
    assert list(rows["recorded_at"].dt.tz_localize("UTC")) == list(history["times"][2:]) + [history["times"][0]]
    assert list(rows["usecase"]) == ["credit_risk", "credit_risk", "another_usecase"]
    assert counts["decision_log_rows"] == 2
    # the training frame keeps its months from 2024-04 on, row for row, and still loads
    frame = read_frame(history["summary"])
    expected = frame_before[frame_before[MONTH_COLUMN] >= "2024-04"].reset_index(drop=True)
    assert set(frame_before[MONTH_COLUMN]) & set(expired), "the frame had expired months"
    pd.testing.assert_frame_equal(frame, expected)
    # online: a customer whose newest snapshot is older than the cutoff is gone, everyone else is unchanged
    online_after = _online_rows(home)["credit_risk_customer_financials"]
    gone = {c for c, m in last_month.items() if m in expired}
    assert any(any(c.encode() in r[0] for c in gone) for r in online_before), "the store held expired rows"
    assert online_after == [r for r in online_before if not any(c.encode() in r[0] for c in gone)]
    assert counts["online_rows"] == len(online_before) - len(online_after)
    # a second run as of the same month deletes nothing more
    again = privacy.enforce_retention(usecase, "2031-03")
    assert again["prediction_records"] == again["decision_log_rows"] == again["training_frame_rows"] == 0
    assert again["raw_files"] == [] and again["offline_partitions"] == {} and again["online_rows"] == 0


def test_retention_deletes_the_reviews_older_than_the_cutoff(history, usecase) -> None:
    """Reviews follow the entity's retention by their own time: one recorded before the cutoff (2024-04-01 as of
    2031-03) is deleted, its reason gone from the database's bytes; one recorded now stays."""
    from datetime import UTC, datetime

    from fairway.review import ReviewLog, record_review

    home, decisions = history["home"], history["log"].read()
    old_decision, new_decision = decisions["request_id"].iloc[0], decisions["request_id"].iloc[3]
    recent = record_review(usecase, new_decision, "decline", by="A. Reviewer", reason=OTHER_REASON)["review"]
    reviews = ReviewLog(usecase)
    try:
        reviews.append({**{k: v for k, v in recent.items() if k != "id"}, "request_id": old_decision,
                        "reviewed_at": datetime(2024, 1, 3, tzinfo=UTC), "reason": PERSON_REASON})  # fmt: skip
        assert [r["reason"] for r in reviews.of(old_decision)] == [PERSON_REASON]
        counts = privacy.enforce_retention(usecase, "2031-03")
        assert counts["review_rows"] == 1
        assert reviews.of(old_decision) == []
        assert [r["reason"] for r in reviews.of(new_decision)] == [OTHER_REASON]
    finally:
        reviews.decisions.engine.dispose()
    assert _scan(home / "records", [PERSON_REASON]) == {}
    assert privacy.enforce_retention(usecase, "2031-03")["review_rows"] == 0


def test_retention_follows_the_shortest_period_of_what_a_file_holds(history, usecase) -> None:
    """A view holding a feature with a shorter retention goes earlier; records follow the entity's period."""
    data = usecase.model_dump()
    for feature in data["features"]:
        if feature["name"] == "age":  # customer_demographics
            feature["tags"]["retention_months"] = 83
    from fairway.config import parse_usecase

    shorter = parse_usecase(data)
    counts = privacy.enforce_retention(shorter, "2031-02")  # 84 months: 2024-01..02 expire; 83: also 2024-03
    assert counts["offline_partitions"]["customer_demographics"] == ["2024-01", "2024-02", "2024-03"]
    assert counts["offline_partitions"]["customer_financials"] == ["2024-01", "2024-02"]
    assert counts["prediction_partitions"] == ["2024-01", "2024-02"]
    assert "2024-03/snapshot.parquet" in counts["raw_files"] and "2024-03/labels.parquet" not in counts["raw_files"]
    assert pq.ParquetFile(history["home"] / "data/raw/credit_risk/2024-03/labels.parquet").metadata.num_rows > 0


# --- the command line ----------------------------------------------------------------------------------------


def test_cli_erase_then_the_no_op_then_retention(small_store, usecase, capsys, monkeypatch) -> None:
    from fairway.cli import main

    monkeypatch.setenv("FAIRWAY_PSEUDONYM_KEY", "test-key-not-secret")
    present = [set(read_month(usecase, m)[0]["customer_id"]) for m in MONTHS[:4]]
    person = sorted(set.intersection(*present))[3]
    assert main(["erase", "--customer-id", person]) == 0
    out = capsys.readouterr().out
    assert out.startswith("erased; receipt ") and '"raw_snapshot_rows": 4' in out and '"raw_label_rows": 3' in out
    assert person not in out and pseudonym(person) not in out
    assert main(["erase", "--customer-id", person]) == 0
    assert "already erased" in capsys.readouterr().out
    assert main(["erase", "--customer-id", "C9999999"]) == 0
    assert capsys.readouterr().out.startswith("no data held for this id; receipt ")
    assert main(["erase", "--customer-id", " "]) == 1
    assert "no customer id given" in capsys.readouterr().err
    assert main(["retention", "--as-of", "2031-01"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["raw_files"] == ["2024-01/snapshot.parquet", "2024-01/labels.parquet"]
    assert sorted(p.name for p in (small_store / "data/raw/credit_risk").iterdir()) == MONTHS[1:4]


# --- temporary files of interrupted writes ------------------------------------------------------------------


def test_a_failing_writer_leaves_no_temporary_file(tmp_path) -> None:
    from fairway.data import temp_leftovers, write_atomic

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("C0000042,2534.87")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(tmp_path / "a.parquet", half_then_fail)
    (tmp_path / "b.parquet").mkdir()  # the rename fails: a folder is in the way
    with pytest.raises(OSError):
        write_atomic(tmp_path / "b.parquet", lambda tmp: tmp.write_text("C0000042"))
    assert temp_leftovers(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["b.parquet"]


def test_retention_removes_stale_temporary_files_and_leaves_writes_in_flight(home, usecase) -> None:
    import os
    import time

    folder = home / "records" / "credit_risk" / "predictions"
    folder.mkdir(parents=True)
    stale = folder / f".2024-01.parquet.{uuid.uuid4().hex}.tmp"
    fresh = folder / f".2024-02.parquet.{uuid.uuid4().hex}.tmp"
    plot = home / "reports" / f".drift.{uuid.uuid4().hex}.tmp.png"  # keep_suffix form
    hidden = folder / ".notes.tmp"  # not a write_atomic name: not touched
    for path in (stale, fresh, plot, hidden):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1 C0000042")
    old = time.time() - privacy.STALE_TEMP_SECONDS - 60
    for path in (stale, plot, hidden):
        os.utime(path, (old, old))
    counts = privacy.enforce_retention(usecase, "2024-06")
    assert counts["temporary_files_removed"] == 2
    assert not stale.exists() and not plot.exists() and fresh.exists() and hidden.exists()
