"""The service with its decision log on PostgreSQL (a network database): a decision's work runs in a worker
thread, so a write that waits for a lock holds that request only, not the worker's other requests or /livez;
the answer still comes only once its record is committed."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest
import sqlalchemy as sa

from fairway.data import read_month
from fairway.records import DecisionLog
from tests.bento.serving import served_champion
from tests.postgres import postgres_server

pytestmark = pytest.mark.slow


def test_a_decision_log_waiting_for_a_lock_holds_only_its_request(tmp_path_factory) -> None:
    with postgres_server() as url:
        log = DecisionLog(url)
        # the promotion ledger stays where the champion was promoted (it follows the decision log when not set)
        env = {"FAIRWAY_DECISION_LOG_URL": url, "FAIRWAY_LEDGER_URL": "sqlite:///{home}/records/ledger.db"}
        with served_champion(tmp_path_factory, "network-log", env) as service:
            customers = sorted(read_month(service["uc"], service["months"][-1])[0]["customer_id"])
            predict = f"{service['url']}/predict"
            assert httpx.post(predict, json={"customer_id": customers[0]}, timeout=30).status_code == 200
            locker = sa.create_engine(url)
            with locker.connect() as connection, concurrent.futures.ThreadPoolExecutor(1) as pool:
                connection.execute(sa.text("LOCK TABLE fairway_decisions IN ACCESS EXCLUSIVE MODE"))
                waiting = pool.submit(httpx.post, predict, json={"customer_id": customers[1]}, timeout=30)
                time.sleep(1.0)
                assert not waiting.done()  # its INSERT waits for the lock: no answer before the record
                began = time.monotonic()
                assert httpx.get(f"{service['url']}/livez", timeout=5).status_code == 200
                assert time.monotonic() - began < 2  # the worker still answers while that write waits
                connection.rollback()  # releases the lock
                answer = waiting.result(timeout=30)
            locker.dispose()
            assert answer.status_code == 200, answer.text
            rows = log.read()
            assert answer.json()["request_id"] in set(rows["request_id"]) and len(rows) == 2
