"""The "Fairway" view of the Airflow UI, served by a real `airflow api-server` with plugins/ loaded: over HTTP,
then rendered by a headless Chromium (its DOM and a screenshot)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fairway.config import load_usecase
from fairway.documentation import model_documentation
from fairway.inference import pin_champion, score_month
from fairway.monitoring import check_drift, check_outcomes, record_month
from tests.bento.serving import free_port
from tests.champion import feature_store, isolated_home, make_champion
from tests.conftest import PROJECT


@pytest.fixture(scope="module")
def ui(tmp_path_factory, airflow_db):
    """A champion and two monitored months, then the API server on a free port."""
    with isolated_home(tmp_path_factory, "ui-home") as home:
        uc = load_usecase("credit_risk")
        feature_store(uc, customers=1500, months=6, seed=11)
        version = make_champion(uc, "2024-04", 3)
        model_documentation(uc, version)  # the fairness_gate DAG's `document` step
        pinned = pin_champion(uc)
        for month in ("2024-05", "2024-06"):
            score_month(uc, month, pinned, f"ui-{month}")
            record_month(uc, check_drift(uc, month), check_outcomes(uc, month), f"ui-{month}")
        port = free_port()
        env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
               "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}  # fmt: skip
        airflow = str(Path(sys.executable).parent / "airflow")
        log = open(home / "api-server.log", "w")  # noqa: SIM115
        server = subprocess.Popen([airflow, "api-server", "--port", str(port), "--host", "127.0.0.1"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                        break
                assert server.poll() is None, (home / "api-server.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "api-server not healthy after 120 s"
                time.sleep(0.5)
            yield {"url": url, "home": home}
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
            log.close()


def test_the_plugin_is_registered_with_a_navigation_entry(ui) -> None:
    plugins = httpx.get(f"{ui['url']}/api/v2/plugins", timeout=20).json()["plugins"]
    fairway = next(p for p in plugins if p["name"] == "fairway")
    assert fairway["fastapi_apps"][0]["url_prefix"] == "/fairway"
    assert fairway["external_views"][0]["url_route"] == "fairway"


def test_the_view_shows_versions_approvals_and_monitoring(ui) -> None:
    page = httpx.get(f"{ui['url']}/fairway/", timeout=30)
    assert page.status_code == 200
    text = page.text
    assert "Champion: <b>credit-risk v1</b>, approved by tester" in text
    assert "<td class='pass'>pass</td>" in text and "approved by tester" in text
    assert "2024-05" in text and "2024-06" in text and "trends.png" in text
    for link in ("reports/credit_risk/monitoring/index.html", "reports/credit_risk/monitoring/2024-06/drift.html",
                 "reports/credit_risk/monitoring/trends.png"):  # fmt: skip
        assert httpx.get(f"{ui['url']}/fairway/{link}", timeout=30).status_code == 200, link
    documentation = httpx.get(f"{ui['url']}/fairway/documentation/credit_risk/1", timeout=30)
    assert documentation.status_code == 200 and "Annex IV" in documentation.text
    assert httpx.get(f"{ui['url']}/fairway/documentation/credit_risk/99", timeout=30).status_code == 404


def test_chromium_renders_the_view_with_its_content(ui, tmp_path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed: `make stack-deps` installs Debian's chromium")
    flags = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path}",
    ]
    dom = subprocess.run([*flags, "--dump-dom", f"{ui['url']}/fairway/"], capture_output=True, text=True, timeout=120)
    assert "credit-risk v1" in dom.stdout and "Monthly monitoring" in dom.stdout
    shot = tmp_path / "fairway.png"
    subprocess.run([*flags, "--window-size=1280,1000", f"--screenshot={shot}", f"{ui['url']}/fairway/"],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (1000, 1280)
    assert pixels[..., :3].std() > 0.05  # not a blank page: text, tables and the trend plot
