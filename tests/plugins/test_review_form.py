"""The review form of the "Fairway" view, served by a real `airflow api-server` with plugins/ loaded and the simple
auth manager with two real accounts: a viewer (sees decisions and reviews) and a user (records reviews, named by
the login). The decisions are a real batch month scored by a real champion."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from fairway.config import load_usecase
from fairway.inference import pin_champion, score_month
from fairway.records import prediction_partition
from fairway.review import ReviewLog, batch_request_id
from tests.champion import feature_store, isolated_home, make_champion
from tests.plugins.api_server import api_server

USERS = {"watcher": "viewer", "reviewer": "user"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, airflow_db):
    """A champion, one scored month, and the API server on a free port with a viewer and a user account."""
    with isolated_home(tmp_path_factory, "review-ui-home") as home:
        uc = load_usecase("credit_risk")
        feature_store(uc, customers=1500, months=6, seed=11)
        make_champion(uc, "2024-04", 3)
        score_month(uc, "2024-05", pin_champion(uc), "review-ui")
        records = pd.read_parquet(prediction_partition(uc, "2024-05"))
        with api_server(home, USERS) as api:
            declined = records[records["decision"] == "decline"]
            yield {"url": api["url"], "uc": uc, "tokens": api["tokens"], "records": records,
                   "request_id": batch_request_id("2024-05", str(declined["subject"].iloc[0]))}  # fmt: skip


def _as(server: dict, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server['tokens'][user]}"}


def _form(server: dict, **fields: str) -> dict[str, str]:
    return {"usecase": "credit_risk", "request_id": server["request_id"], "decision": "approve", "kind": "override",
            "reason": "Income verified with current payslips", **fields}  # fmt: skip


def test_the_overview_links_to_the_review_page(server) -> None:
    page = httpx.get(f"{server['url']}/fairway/", headers=_as(server, "watcher"), timeout=30)
    assert page.status_code == 200 and "href='review?usecase=credit_risk'" in page.text


def test_a_user_looks_up_a_decision_and_records_a_review_under_their_login(server) -> None:
    url, request_id = server["url"], server["request_id"]
    page = httpx.get(f"{url}/fairway/review", params={"usecase": "credit_risk", "request_id": request_id},
                     headers=_as(server, "reviewer"), timeout=30)  # fmt: skip
    assert page.status_code == 200, page.text
    assert request_id in page.text and "<td>decline</td>" in page.text and "No review recorded." in page.text
    assert "Recorded as <b>reviewer</b> (your Airflow login)" in page.text and "name='by'" not in page.text
    assert "method='post' action='review'" in page.text
    # only this decision is shown: no other record's subject
    others = [s for s in server["records"]["subject"] if s != request_id.rsplit("-", 1)[1]]
    assert not [s for s in others if s in page.text]
    # a `by` in the form does not replace the login
    answer = httpx.post(f"{url}/fairway/review", data=_form(server, by="somebody else"), headers=_as(server, "reviewer"),
                        timeout=30)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert "override recorded: decline → approve by reviewer" in answer.text
    reviews = ReviewLog(server["uc"]).of(request_id)
    assert [(r["reviewer"], r["channel"], r["decision"], r["original_decision"]) for r in reviews] == [
        ("reviewer", "airflow-ui", "approve", "decline")
    ]
    assert "<tr><th>effective decision</th><td>approve</td></tr>" in answer.text


def test_a_viewer_sees_the_decision_but_cannot_record_a_review(server) -> None:
    url, request_id = server["url"], server["request_id"]
    before = len(ReviewLog(server["uc"]).of(request_id))
    page = httpx.get(f"{url}/fairway/review", params={"usecase": "credit_risk", "request_id": request_id},
                     headers=_as(server, "watcher"), timeout=30)  # fmt: skip
    assert page.status_code == 200 and request_id in page.text
    assert "method='post'" not in page.text and "may see decisions and reviews, not record them" in page.text
    answer = httpx.post(f"{url}/fairway/review", data=_form(server, by="watcher"), headers=_as(server, "watcher"),
                        timeout=30)  # fmt: skip
    assert answer.status_code == 403 and "may not record reviews" in answer.text
    assert len(ReviewLog(server["uc"]).of(request_id)) == before


def test_refused_reviews_record_nothing(server) -> None:
    url, request_id, auth = server["url"], server["request_id"], _as(server, "reviewer")
    before = len(ReviewLog(server["uc"]).of(request_id))
    for fields, status, message in (({"reason": "  "}, 400, "the reason (--reason) is empty"),
                                    ({"decision": "maybe"}, 400, "decision &#x27;maybe&#x27; is not one of"),
                                    ({"kind": "appeal"}, 400, "kind &#x27;appeal&#x27; is not one of"),
                                    ({"request_id": "no-such-request"}, 404, "has request id &#x27;no-such-request")):  # fmt: skip
        answer = httpx.post(f"{url}/fairway/review", data=_form(server, **fields), headers=auth, timeout=30)
        assert answer.status_code == status, (fields, answer.status_code, answer.text[:300])
        assert message in answer.text, (fields, answer.text[:2000])
    cross = httpx.post(f"{url}/fairway/review", data=_form(server), timeout=30,
                       headers={**auth, "Origin": "https://elsewhere.example"})  # fmt: skip
    assert cross.status_code == 403 and "cross-origin" in cross.text
    anonymous = httpx.post(f"{url}/fairway/review", data=_form(server), timeout=30)
    assert anonymous.status_code == 401
    assert len(ReviewLog(server["uc"]).of(request_id)) == before


def test_an_unknown_request_id_is_a_404_page_with_the_lookup_form(server) -> None:
    page = httpx.get(f"{server['url']}/fairway/review", params={"usecase": "credit_risk", "request_id": "nope"},
                     headers=_as(server, "reviewer"), timeout=30)  # fmt: skip
    assert page.status_code == 404
    assert "no decision of &#x27;credit_risk&#x27; has request id &#x27;nope&#x27;" in page.text
    assert "method='get' action='review'" in page.text
