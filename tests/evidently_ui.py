"""A real `evidently ui` process on 127.0.0.1 serving a workspace folder, and what its dashboard API answers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import PROJECT
from tests.sinks import free_port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def evidently_ui(workspace: Path, timeout: float = 120) -> Iterator[str]:
    """`evidently ui --workspace <workspace>` on a free port; yields its base URL, stops it afterwards."""
    port = free_port()
    log = workspace.parent / f"evidently-ui-{port}.log"
    workspace.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen([str(PROJECT / ".venv" / "bin" / "evidently"), "ui", "--workspace", str(workspace),
                                    "--host", "127.0.0.1", "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, cwd=workspace.parent, start_new_session=True,
                                   env={**os.environ, "DO_NOT_TRACK": "1"})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                _get(f"{url}/api/version")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"evidently ui did not come up: {log.read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def projects(url: str) -> list[dict[str, Any]]:
    return list(_get(f"{url}/api/projects"))


def dashboard(url: str, project_id: str) -> dict[str, Any]:
    return dict(_get(f"{url}/api/v2/dashboards/{project_id}"))


def reload(url: str, project_id: str) -> None:
    """Make the server read the project's snapshots again (what its folder watcher does on its own, later)."""
    _get(f"{url}/api/projects/{project_id}/reload")


def panel_series(url: str, project_id: str, panel: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """What the UI plots for a panel: per value (by its legend), month -> value, from the server's data-series API
    queried with the panel's own filters, as the UI's dashboard page does."""
    filters = [{"tags": v.get("tags", []), "metadata": v.get("metadata", {}), "metric": v["metric"],
                "metric_labels": v.get("metric_labels", {})} for v in panel["values"]]  # fmt: skip
    answer = _post(f"{url}/api/v2/snapshots/{project_id}/data_series_batch", {"series_filter": filters})
    months = [source["metadata"].get("month") for source in answer["sources"]]
    plotted: dict[str, dict[str, float | None]] = {}
    for series in answer["series"]:
        legend = panel["values"][series["filter_index"]].get("legend") or series["metric_type"]
        assert legend not in plotted, f"two series under one legend {legend!r} in panel {panel['title']!r}"
        plotted[legend] = {m: v for m, v in zip(months, series["values"], strict=False) if v is not None}
    return plotted
