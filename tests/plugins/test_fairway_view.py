"""The "Fairway" view of the Airflow UI, served by a real `airflow api-server` with plugins/ loaded and the simple
auth manager with a real user and password (no all-admins shortcut): over HTTP without and with an Airflow login,
then in a headless Chromium that logs in through Airflow's login page (its DOM and a screenshot)."""

from __future__ import annotations

import base64
import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from fairway import ui
from fairway.config import load_usecase
from fairway.documentation import model_documentation
from fairway.inference import pin_champion, score_month
from fairway.monitoring import check_drift, check_outcomes, record_month
from tests.champion import feature_store, isolated_home, make_champion
from tests.conftest import PROJECT
from tests.plugins.api_server import api_server
from tests.plugins.browser import chromium, chromium_binary

USER = "tester"  # role viewer: the least an Airflow user can be
PAGES = ["/fairway/", "/fairway/documentation/credit_risk/1", "/fairway/reports/credit_risk/monitoring/trends.png",
         "/fairway/reports/credit_risk/monitoring/2024-06/drift.html",
         "/fairway/documentation/credit_risk/1/fairness_by_group.png"]  # fmt: skip
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory, airflow_db):
    """A champion and two monitored months, then the API server on a free port with one viewer account."""
    with isolated_home(tmp_path_factory, "ui-home") as home:
        uc = load_usecase("credit_risk")
        feature_store(uc, customers=1500, months=6, seed=11)
        version = make_champion(uc, "2024-04", 3)
        model_documentation(uc, version)  # the fairness_gate DAG's `document` step
        pinned = pin_champion(uc)
        for month in ("2024-05", "2024-06"):
            score_month(uc, month, pinned, f"ui-{month}")
            record_month(uc, check_drift(uc, month), check_outcomes(uc, month), f"ui-{month}")
        with api_server(home, {USER: "viewer"}) as api:
            yield {"url": api["url"], "home": home, "password": api["passwords"][USER], "jwt_secret": api["jwt_secret"],
                   "token": api["tokens"][USER]}  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_plugin_is_registered_with_a_navigation_entry(ui_server) -> None:
    answer = httpx.get(f"{ui_server['url']}/api/v2/plugins", headers=bearer(ui_server["token"]), timeout=20)
    fairway = next(p for p in answer.json()["plugins"] if p["name"] == "fairway")
    assert fairway["fastapi_apps"][0]["url_prefix"] == "/fairway"
    assert fairway["external_views"][0]["url_route"] == "fairway"


def test_every_page_and_report_needs_an_airflow_login(ui_server) -> None:
    url, token = ui_server["url"], ui_server["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    algorithm = jwt.get_unverified_header(token)["alg"]
    forged = jwt.encode(claims, "not-the-api-servers-secret-" * 4, algorithm=algorithm)  # the same claims, other key
    expired = jwt.encode({**claims, "exp": int(time.time()) - 60}, ui_server["jwt_secret"], algorithm=algorithm)
    for page in PAGES:
        assert httpx.get(f"{url}{page}", headers=bearer(token), timeout=30).status_code == 200, page
        assert httpx.get(f"{url}{page}", cookies={"_token": token}, timeout=30).status_code == 200, page
        for headers, cookies in (({}, {}), (bearer(forged), {}), (bearer(expired), {}), (bearer("garbage"), {}),
                                 ({}, {"_token": forged}), ({}, {"_token": expired}),
                                 ({"Authorization": f"Basic {token}"}, {})):  # fmt: skip
            answer = httpx.get(f"{url}{page}", headers=headers, cookies=cookies, timeout=30)
            assert answer.status_code == 401, (page, headers, cookies, answer.status_code)
            assert answer.headers["www-authenticate"] == "Bearer" and "log in to Airflow" in answer.json()["detail"]
            assert "Annex IV" not in answer.text and "credit-risk" not in answer.text
    # a forged cookie is not trusted over a valid header, nor the other way round: the header wins, as in the core API
    assert (
        httpx.get(f"{url}/fairway/", headers=bearer(token), cookies={"_token": forged}, timeout=30).status_code == 200
    )
    assert (
        httpx.get(f"{url}/fairway/", headers=bearer(forged), cookies={"_token": token}, timeout=30).status_code == 401
    )


def test_a_browser_without_a_session_is_sent_to_the_airflow_login_and_back(ui_server) -> None:
    url = ui_server["url"]
    answer = httpx.get(f"{url}/fairway/?usecase=credit_risk", headers={"Accept": "text/html,*/*;q=0.8"}, timeout=30)
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert location.path == "/auth/login"
    assert parse_qs(location.query)["next"] == [f"{url}/fairway/?usecase=credit_risk"]
    assert httpx.get(f"{url}{location.path}", timeout=30).status_code == 200  # Airflow's login page answers


def test_the_view_shows_versions_approvals_and_monitoring(ui_server) -> None:
    url, auth = ui_server["url"], bearer(ui_server["token"])
    page = httpx.get(f"{url}/fairway/", headers=auth, timeout=30)
    assert page.status_code == 200
    text = page.text
    assert "Champion: <b>credit-risk v1</b>, approved by tester" in text
    assert "<td class='pass'>pass</td>" in text and "approved by tester" in text
    assert "2024-05" in text and "2024-06" in text and "trends.png" in text
    for link in ("reports/credit_risk/monitoring/index.html", "reports/credit_risk/monitoring/2024-06/drift.html",
                 "reports/credit_risk/monitoring/trends.png"):  # fmt: skip
        assert httpx.get(f"{url}/fairway/{link}", headers=auth, timeout=30).status_code == 200, link
    documentation = httpx.get(f"{url}/fairway/documentation/credit_risk/1", headers=auth, timeout=30)
    assert documentation.status_code == 200 and "Annex IV" in documentation.text


def test_the_documentation_shows_its_figures_and_the_files_it_links_to_answer(ui_server) -> None:
    """The page embeds its figures (they show here and in MLflow's artifact view, where the HTML is served from a
    blob: URL); the Markdown's relative links resolve next to the page."""
    url, auth = ui_server["url"], bearer(ui_server["token"])
    page = httpx.get(f"{url}/fairway/documentation/credit_risk/1", headers=auth, timeout=30)
    sources = re.findall(r'<img[^>]*src="([^"]+)"', page.text)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources), sources[:1]
    assert all(base64.b64decode(s.split(",", 1)[1]).startswith(PNG) for s in sources)
    md = httpx.get(f"{url}/fairway/documentation/credit_risk/1/model_documentation.md", headers=auth, timeout=30)
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", md.text)
    assert sorted(linked) == ["fairness_by_group.png", "permutation_importance.png"]
    for name in linked:
        answer = httpx.get(f"{url}/fairway/documentation/credit_risk/1/{name}", headers=auth, timeout=30)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png", name
        assert answer.content.startswith(PNG)
    for name, status in (("nosuch.png", {404}), ("..%2F..%2Fmlflow.db", {400, 404}), ("MLmodel", {400}),
                         ("a.py", {400})):  # fmt: skip
        answer = httpx.get(f"{url}/fairway/documentation/credit_risk/1/{name}", headers=auth, timeout=30)
        assert answer.status_code in status, (name, answer.status_code, answer.text[:200])
        assert "SQLite" not in answer.text
    assert httpx.get(f"{url}/fairway/documentation/credit_risk/99/fairness_by_group.png", headers=auth,
                     timeout=30).status_code == 404  # fmt: skip


def test_unknown_use_cases_and_versions_answer_404_with_a_message(ui_server) -> None:
    url, auth = ui_server["url"], bearer(ui_server["token"])
    for path, message in (("/fairway/?usecase=nosuch", "no use case named 'nosuch'; the use cases are: "),
                          ("/fairway/documentation/nosuch/1", "no use case named 'nosuch'"),
                          ("/fairway/documentation/credit_risk/99", "credit-risk has no version 99"),
                          ("/fairway/reports/credit_risk/monitoring/1999-01/drift.html", "Not Found")):  # fmt: skip
        answer = httpx.get(f"{url}{path}", headers=auth, timeout=30)
        assert answer.status_code == 404, (path, answer.status_code, answer.text[:300])
        assert message in answer.json()["detail"], (path, answer.text[:300])


def test_a_use_case_that_is_not_a_plain_name_is_refused(ui_server, tmp_path) -> None:
    """Paths that would reach a real, valid use-case file (a copy outside the use-case folders, the built-in one
    through `..`) are refused as names, before any lookup."""
    url, auth = ui_server["url"], bearer(ui_server["token"])
    outside = tmp_path / "credit_risk.yaml"
    outside.write_text((PROJECT / "include" / "fairway" / "usecases" / "credit_risk.yaml").read_text())
    for name in (str(outside), str(outside.with_suffix("")), "../usecases/credit_risk", "credit_risk/../credit_risk",
                 "..", "credit_risk\n", "Credit_Risk", "credit_risk.yaml"):  # fmt: skip
        answer = httpx.get(f"{url}/fairway/", params={"usecase": name}, headers=auth, timeout=30)
        assert answer.status_code == 400, (name, answer.status_code, answer.text[:300])
        assert "is not a use-case name" in answer.json()["detail"]
    for path in ("/fairway/documentation/..%2Fusecases%2Fcredit_risk/1", "/fairway/documentation/credit_risk/..%2F1",
                 "/fairway/documentation/credit_risk/1.0", "/fairway/reports/..%2F..%2Fmlflow.db",
                 "/fairway/reports/%2E%2E/mlflow.db"):  # fmt: skip
        answer = httpx.get(f"{url}{path}", headers=auth, timeout=30)
        assert answer.status_code in (400, 404), (path, answer.status_code)
        assert "SQLite" not in answer.text


def test_refused_names_are_never_looked_up(monkeypatch) -> None:
    """In process: a refused name reaches neither the use-case lookup nor the registry."""
    looked_up: list[object] = []
    monkeypatch.setattr(ui, "resolve", lambda name: looked_up.append(name))
    monkeypatch.setattr(ui, "usecase_dirs", lambda: looked_up.append("dirs") or [])
    for name in ("../usecases/credit_risk", "/etc/passwd", "credit_risk.yaml", "a/b", ""):
        with pytest.raises(ui.RefusedName):
            ui.page(name)
        with pytest.raises(ui.RefusedName):
            ui.documentation(name, "1")
    assert looked_up == []
    with pytest.raises(ui.NotFound, match="no use case named 'credit_risk'; the use cases are: none"):
        ui.select_usecase("credit_risk")  # a plain name, but no folder holds it here
    assert looked_up == ["dirs"]


def test_chromium_logs_in_and_renders_the_view_with_its_content(ui_server, tmp_path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium not installed: `make stack-deps` installs Debian's chromium")
    url = ui_server["url"]
    with chromium(binary, tmp_path / "profile") as browser:
        browser.navigate(f"{url}/fairway/")
        assert browser.wait_for("location.pathname") == "/auth/login", browser.location()  # no session yet
        browser.type_into("input[name=username]", USER)
        browser.type_into("input[type=password]", ui_server["password"])
        browser.wait_for("!document.querySelector('button[type=submit]').disabled")
        browser.evaluate("document.querySelector('button[type=submit]').click()")
        browser.wait_for(f"location.href === {json.dumps(f'{url}/fairway/')} && document.readyState === 'complete'")
        dom = browser.evaluate("document.documentElement.outerHTML")
        assert "credit-risk v1" in dom and "Monthly monitoring" in dom
        browser.wait_for("[...document.images].every(image => image.complete && image.naturalWidth > 0)")
        shot = tmp_path / "fairway.png"
        shot.write_bytes(browser.screenshot(1280, 1000))
        browser.navigate(f"{url}/fairway/documentation/credit_risk/1")
        browser.wait_for("document.readyState === 'complete' && document.images.length === 2")
        browser.wait_for("[...document.images].every(image => image.complete && image.naturalWidth > 0)")
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (1000, 1280)
    assert pixels[..., :3].std() > 0.05  # not a blank page: text, tables and the trend plot
