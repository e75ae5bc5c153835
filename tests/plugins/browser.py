"""A headless Chromium driven over the DevTools protocol (a websocket, no extra package): it navigates, types
into forms like a user, reads the DOM and takes screenshots, with its own cookies, so a test can log in through
Airflow's real login page before it looks at a page behind it."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.bento.serving import stop_process


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, connection: ClientConnection) -> None:
        self._ws = connection
        self._ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == message_id:  # events and other answers are not needed
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> Any:
        """Poll a JavaScript expression until it is truthy (pages load, redirect and render asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(RuntimeError):  # a navigation can destroy the context mid-evaluation
                if value := self.evaluate(expression):
                    return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} not true after {timeout} s at {self.location()}")
            time.sleep(0.2)

    def location(self) -> str:
        with contextlib.suppress(RuntimeError):
            return str(self.evaluate("location.href"))
        return "?"

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        time.sleep(0.2)
        self.wait_for("document.readyState === 'complete'")

    def type_into(self, selector: str, text: str) -> None:
        """Focus a field and type into it as a user does (React sees real input events)."""
        self.wait_for(f"document.querySelector({json.dumps(selector)}) !== null")
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def screenshot(self, width: int, height: int) -> bytes:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])


@contextlib.contextmanager
def chromium(binary: str, profile: Path) -> Iterator[Browser]:
    """A fresh headless Chromium (its own profile: no cookies) with one page, stopped afterwards."""
    process = subprocess.Popen([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                "--no-first-run", f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    try:
        port = _wait(lambda: _devtools_port(profile), "Chromium's DevToolsActivePort")
        page = _wait(lambda: _page_target(port), "a page target")
        with connect(page, max_size=None, open_timeout=30) as connection:
            browser = Browser(connection)
            browser.send("Page.enable")
            yield browser
    finally:
        stop_process(process)


def _wait(probe: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not there after {timeout} s")
        time.sleep(0.2)
    return found


def _devtools_port(profile: Path) -> int | None:
    lines = (profile / "DevToolsActivePort").read_text().split() if (profile / "DevToolsActivePort").is_file() else []
    return int(lines[0]) if lines else None


def _page_target(port: int) -> str | None:
    with contextlib.suppress(httpx.HTTPError):
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
        pages = [t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"]
        return pages[0] if pages else None
    return None
