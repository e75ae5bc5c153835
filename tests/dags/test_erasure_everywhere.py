"""Erasure that finds everything: after a realistic lifecycle (a champion trained, registered, gated, approved,
packaged into BentoML's store and served; a month scored; a decision and two refused requests at the service; a
person's review of that decision, with a free-text reason; a write killed half-way; the erasure requested
through Airflow's REST API, which records it in the audit log) the erasure DAG runs through `dag.test()`. Then
every byte under FAIRWAY_HOME, BentoML's home (models, bentos, the service's log) and Airflow's home (its
metadata DB and logs) is scanned for the person's id, their pseudonym, their feature values as text and the
review's reason: parquet files (and temporary files that are parquet) decoded cell by cell, everything else as
raw bytes. A second erasure (of another id) follows, and the same scan must then find nothing at all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pendulum
import pyarrow.parquet as pq
import pytest

from fairway.config import load_usecase
from fairway.data import read_month
from fairway.records import pseudonym
from tests.bento.serving import served
from tests.champion import dag_bag, feature_store, isolated_home, make_champion, pin_home

FLOATS = ("income", "credit_amount", "savings_balance", "debt_ratio")
ANOTHER_ID = "C9999990"  # the second erasure's id: not a customer (the receipt says no data was held)
REVIEW_REASON = "the applicant sent payslips by post, ref 4TQ8W-review"  # free text about the person


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PAR1"


def _found(path: Path, needles: list[str]) -> set[str]:
    """The needles in a file, each as a whole token (not inside a longer number or id)."""
    if _is_parquet(path):
        try:
            cells = pq.read_table(path).to_pandas().astype(str)
        except Exception:  # noqa: BLE001 - a truncated parquet file: its raw bytes are scanned below
            cells = None
        if cells is not None:
            return {n for n in needles if cells.apply(lambda c, n=n: c.str.contains(_token(n))).any().any()}
    content = path.read_bytes()
    return {n for n in needles if re.search(_token(n).encode(), content)}


def _token(needle: str) -> str:
    """An id or a number as a whole token; free text (the review's reason) anywhere."""
    if " " in needle:
        return re.escape(needle)
    return r"(?<![A-Za-z0-9_.])" + re.escape(needle) + r"(?![0-9A-Za-z_])"


def _scan(roots: dict[str, Path], needles: list[str]) -> dict[str, set[str]]:
    found = {}
    for name, root in roots.items():
        for path in _files(root):
            hits = _found(path, needles)
            if hits:
                found[f"{name}/{path.relative_to(root)}"] = hits
    return found


def _distinctive_values(uc, person: str, months: list[str]) -> list[str]:
    """The person's float feature values, as text, that no other customer has in any month."""
    snapshots = pd.concat([read_month(uc, m)[0] for m in months], ignore_index=True)
    values = []
    for column in FLOATS:
        theirs = set(snapshots.loc[snapshots["customer_id"] == person, column].dropna().map(repr))
        others = set(snapshots.loc[snapshots["customer_id"] != person, column].dropna().map(repr))
        values += sorted(v for v in theirs - others if len(v) >= 6)
    return values


def _sync_dags() -> None:
    """Write the DAGs to Airflow's DB, as the dag processor does (the REST API triggers only known DAGs)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)


def _trigger_through_the_api(conf: dict) -> str:
    """POST /api/v2/dags/erasure/dagRuns on Airflow's own API app, in-process, as the trigger form does."""
    from airflow.configuration import conf as airflow_conf
    from fastapi.testclient import TestClient

    before = airflow_conf.get("core", "simple_auth_manager_all_admins", fallback="False")
    airflow_conf.set("core", "simple_auth_manager_all_admins", "True")
    from airflow.api_fastapi.app import create_app

    try:
        with TestClient(create_app()) as client:
            answer = client.post("/api/v2/dags/erasure/dagRuns", json={"logical_date": None, "conf": conf})
    finally:
        airflow_conf.set("core", "simple_auth_manager_all_admins", before)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["dag_run_id"])


def _delete_run(dag_id: str, run_id: str) -> None:
    """The queued run the API created (no scheduler runs it here): later modules' scheduler loops
    (local_runs) would otherwise start it."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))


def _killed_writer(path: Path, rows: pd.DataFrame) -> None:
    """A process killed in the middle of write_parquet_atomic (after the temporary file is written, before the
    rename): no `finally` runs, the hidden temporary file stays."""
    frame = path.parent / "killed.parquet"
    rows.to_parquet(frame)
    code = (
        "import os, sys; import pyarrow.parquet as pq; from pathlib import Path; from fairway.data import write_atomic\n"
        f"table = pq.read_table({str(frame)!r})\n"
        f"write_atomic(Path({str(path)!r}), lambda tmp: (pq.write_table(table, tmp), os._exit(9)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=os.environ.copy(), timeout=120)
    frame.unlink()
    assert done.returncode == 9


@pytest.fixture(scope="module")
def flow(tmp_path_factory, airflow_db) -> dict:
    from fairway import registry
    from fairway.inference import pin_champion, score_month
    from fairway.packaging import package
    from fairway.review import record_review
    from fairway.training import MONTH_COLUMN, read_frame

    with isolated_home(tmp_path_factory, "erasure-everywhere") as home:
        uc = load_usecase("credit_risk")
        months = feature_store(uc, customers=1500, months=5, seed=23, online_months=2)
        version = make_champion(uc, months[-2], 3)
        # the person: the first holdout row of the champion's frame, the row an input example taken from the
        # holdout would hold
        lineage = registry.training_lineage(uc, version)
        frame = read_frame(lineage)
        first = frame[frame[MONTH_COLUMN] == lineage["holdout_month"]].iloc[0]
        snapshot = read_month(uc, lineage["holdout_month"])[0]
        same = (snapshot[uc.model_inputs].astype(str) == first[uc.model_inputs].astype(str)).all(axis=1)
        [person] = list(snapshot.loc[same, "customer_id"])
        values = _distinctive_values(uc, person, months)
        assert values, "the person has distinctive feature values to look for"
        row = snapshot.loc[snapshot["customer_id"] == person].iloc[0]

        bento = package(uc, version)["bento"]
        pinned = pin_champion(uc)
        score_month(uc, months[-1], pinned, f"run-{months[-1]}")
        applicant = {c: (row[c].item() if hasattr(row[c], "item") else row[c]) for c in uc.model_inputs}
        with served(bento) as url:
            answered = httpx.post(f"{url}/predict", json={"customer_id": person}, timeout=30,
                                  headers={"x-request-id": "req-person"})  # fmt: skip
            typo = httpx.post(f"{url}/predict", json={"customer_id": person + "!"}, timeout=30,
                              headers={"x-request-id": "req-typo"})  # fmt: skip
            as_text = httpx.post(f"{url}/predict_features", timeout=30, headers={"x-request-id": "req-text"},
                                 json={"applicant": {**applicant, "income": repr(float(row["income"]))}})  # fmt: skip
        assert answered.status_code == 200, answered.text
        assert typo.status_code == 400 and as_text.status_code == 400, (typo.text, as_text.text)
        review = record_review(uc, answered.json()["request_id"], "decline", by="A. Reviewer", reason=REVIEW_REASON)
        assert review["decision"].subject == pseudonym(person)
        _killed_writer(home / "records" / uc.name / "predictions" / "2031-01.parquet",
                       snapshot[snapshot["customer_id"] == person])  # fmt: skip
        yield {"home": home, "uc": uc, "person": person, "values": values, "version": version}


@pytest.fixture(scope="module")
def erased(flow, airflow_db) -> Iterator[dict]:
    person = flow["person"]
    with pytest.MonkeyPatch.context() as mp:
        pin_home(mp, flow["home"])
        bag = dag_bag()
        conf = {"usecase": "credit_risk", "customer_id": person}
        _sync_dags()
        requested = _trigger_through_the_api(conf)
        roots = {"FAIRWAY_HOME": flow["home"], "BENTOML_HOME": Path(os.environ["BENTOML_HOME"]),
                 "AIRFLOW_HOME": Path(os.environ["AIRFLOW_HOME"])}  # fmt: skip
        needles = [person, pseudonym(person), REVIEW_REASON, *flow["values"]]
        before = _scan(roots, needles)
        run = bag.get_dag("erasure").test(run_conf=conf, logical_date=pendulum.datetime(2031, 6, 1, tz="UTC"))
        after = _scan(roots, needles)
        result = run.get_task_instance("erase").xcom_pull(task_ids="erase")
        try:
            yield {**flow, "run": run, "requested": requested, "before": before, "after": after, "result": result,
                   "roots": roots, "needles": needles}  # fmt: skip
        finally:
            _delete_run("erasure", requested)


@pytest.fixture(scope="module")
def erased_again(erased) -> dict:
    """A second erasure, of another id, after the first: its first step redacts the conf of every other DAG run,
    the first erasure's run included."""
    with pytest.MonkeyPatch.context() as mp:
        pin_home(mp, erased["home"])
        written_back = _confs_holding(erased["person"])  # before the second run
        conf = {"usecase": "credit_risk", "customer_id": ANOTHER_ID}
        run = dag_bag().get_dag("erasure").test(run_conf=conf, logical_date=pendulum.datetime(2031, 6, 2, tz="UTC"))
        after = _scan(erased["roots"], erased["needles"])
        result = run.get_task_instance("erase").xcom_pull(task_ids="erase")
        return {"run": run, "result": result, "after": after, "written_back": written_back}


def _stored_conf(dag_id: str, run_id: str) -> dict:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return dict(session.scalars(select(DagRun.conf).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one())


def test_the_scan_finds_the_person_before_the_erasure(erased) -> None:
    """The scan is not vacuous: it finds the id in the raw data, Airflow's DB (run confs, audit log) and the
    killed writer's temporary file, and the feature values in the raw data."""
    before, person = erased["before"], erased["person"]
    assert any(p.startswith("FAIRWAY_HOME/data/raw/") and person in hits for p, hits in before.items())
    assert any(p.startswith("AIRFLOW_HOME/airflow.db") and person in hits for p, hits in before.items())
    assert any(re.search(r"/\.2031-01\.parquet\.[0-9a-f]{32}\.tmp$", p) and person in hits for p, hits in before.items())
    assert any(p.startswith("FAIRWAY_HOME/records/credit_risk/decisions.db") and REVIEW_REASON in hits
               for p, hits in before.items())  # fmt: skip
    raw_values = set().union(*(hits for p, hits in before.items() if p.startswith("FAIRWAY_HOME/data/raw/")))
    assert set(erased["values"]) <= raw_values


def test_after_the_erasure_dag_the_person_is_nowhere(erased) -> None:
    """Nowhere, but for one artefact of `dag.test()`: the last step redacted the run's own conf (its count), and
    then `dag.test()` wrote it back when it recorded that step's state (`TaskInstance.set_state` merges the task
    instance, and with it the run as loaded before the step). A scheduler sets task states through the execution
    API and never does that. The next test shows that the next erasure removes it."""
    assert erased["run"].state == "success"
    assert erased["result"]["erased"] is True
    assert erased["result"]["removed"]["review_rows"] == 1
    redacted = erased["run"].get_task_instance("redact_run_conf").xcom_pull(task_ids="redact_run_conf")
    assert redacted["dag_run_confs_redacted"] == 1 and redacted["wal_checkpoint"] == "done", redacted
    outside = {path: hits for path, hits in erased["after"].items() if not path.startswith("AIRFLOW_HOME/airflow.db")}
    assert outside == {}
    assert set().union(*(erased["after"].values() or [set()])) <= {erased["person"]}


def test_after_the_next_erasure_the_person_is_nowhere_at_all(erased, erased_again) -> None:
    """Zero hits for the first person under every root, Airflow's metadata DB included: the second erasure's
    first step redacted the conf that `dag.test()` had written back into the first run (an id whose erasure has
    a receipt)."""
    assert erased_again["run"].state == "success"
    assert erased_again["result"]["erased"] is True and "no data held" in erased_again["result"]["message"]
    # what this test is about: dag.test() wrote the first run's conf back (if Airflow stops doing that, this fails
    # and the previous test can require zero hits itself)
    assert erased_again["written_back"] == [("erasure", erased["run"].run_id)], erased_again["written_back"]
    redacted = erased_again["result"]["removed"]["airflow_metadata"]
    assert redacted["earlier_erasure_confs_redacted"] == len(erased_again["written_back"]), redacted
    assert erased_again["after"] == {}
    assert _confs_holding(erased["person"]) == []
    assert _stored_conf("erasure", erased["run"].run_id)["customer_id"] == "[erased]"


def _confs_holding(needle: str) -> list[tuple[str, str]]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import String, cast, select

    with create_session() as session:
        query = select(DagRun.dag_id, DagRun.run_id).where(cast(DagRun.conf, String).contains(needle))
        return [(dag_id, run_id) for dag_id, run_id in session.execute(query).all()]


def test_the_runs_conf_and_the_audit_log_no_longer_hold_the_id(erased) -> None:
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    assert _stored_conf("erasure", erased["requested"])["customer_id"] == "[erased]"
    with create_session() as session:
        extras = session.scalars(select(Log.extra).where(Log.event == "trigger_dag_run")).all()
    assert any("[erased]" in (extra or "") for extra in extras), extras


def test_the_receipt_says_what_was_searched_and_what_is_kept(erased) -> None:
    receipt = json.loads(Path(erased["result"]["receipt"]).read_text())
    searched = receipt["searched"]
    assert searched["BentoML's store (models and bentos)"]["files_searched"] > 0
    assert searched["BentoML's store (models and bentos)"]["input_examples"] >= 2  # the model, the bento's copy
    assert searched["MLflow artifacts"]["input_examples"] >= 2 and searched["MLflow artifacts"]["holding_the_person"] == 0
    assert searched["Airflow's metadata DB (every text column)"]["searched"] is True
    assert receipt["removed"]["airflow_metadata"]["audit_log_rows_redacted"] >= 1
    assert receipt["removed"]["airflow_metadata"]["dag_run_confs_redacted"] >= 1  # the run the API created
    assert receipt["removed"]["temporary_files_removed"] == 1
    assert receipt["removed"]["service_log_files_scrubbed"] == 0, "the service never logged the person"
    assert receipt["warnings"] == []
    kept = " ".join(receipt["kept"])
    assert "no record of the person" not in kept and "input examples are synthetic" in kept
    assert "protected attributes" in kept and "retention" in kept
    text = json.dumps(receipt)
    assert all(needle not in text for needle in erased["needles"])
