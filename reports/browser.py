"""Open a rendered report in headless Chromium and check it as a reader would see it.

Drives Chromium through the Chrome DevTools Protocol (CDP) over its websocket
(``websocket-client``, a test extra): loads ``index.html`` from ``file://``, records every
network request, console error and uncaught exception, checks that every ``<img>``
decoded (``naturalWidth > 0``) and takes a PNG screenshot. Used by the report tests and
to make the README screenshot; nothing here is needed to render a report.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
         "--mute-audio", "--hide-scrollbars", "--remote-debugging-port=0")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable on PATH (or $CHROMIUM), else None."""
    env = os.environ.get("CHROMIUM")
    if env and shutil.which(env):
        return shutil.which(env)
    return next((p for p in map(shutil.which, CHROMIUM_CANDIDATES) if p), None)


@dataclass
class PageCheck:
    """What the browser saw."""

    title: str = ""
    images: list[dict] = field(default_factory=list)  # {"src", "complete", "naturalWidth"}
    requests: list[str] = field(default_factory=list)  # every URL the page requested
    console_errors: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    page_height: int = 0

    @property
    def broken_images(self) -> list[str]:
        return [i["src"] for i in self.images if not i["complete"] or i["naturalWidth"] <= 0]

    @property
    def non_file_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(("file://", "data:"))]


class _CDP:
    """Minimal CDP client: commands by id, events buffered (flattened target sessions)."""

    def __init__(self, ws_url: str, timeout: float):
        import websocket  # test extra: websocket-client

        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"CDP {method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, deadline: float) -> dict:
        while time.monotonic() < deadline:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {method} event before the deadline")

    def close(self) -> None:
        self.ws.close()


def _launch(chromium: str, profile: Path, width: int, height: int, timeout: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists():
            lines = port_file.read_text().split()
            if len(lines) >= 2:
                return proc, f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        if proc.poll() is not None:
            raise RuntimeError(f"{chromium} exited with code {proc.returncode} before opening DevTools")
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"{chromium} did not open DevTools within {timeout:.0f} s")


def check_page(html: str | os.PathLike, width: int = 1280, height: int = 900, full_page: bool = False,
               timeout: float = 30.0, chromium: str | None = None) -> PageCheck:
    """Load ``html`` from file:// in headless Chromium; report images, requests, errors, screenshot.

    ``full_page`` captures the whole document instead of the first ``width`` x ``height``.
    """
    chromium = chromium or find_chromium()
    if not chromium:
        raise FileNotFoundError("no chromium executable found (Debian package: chromium)")
    url = Path(html).resolve().as_uri()
    result = PageCheck()
    with tempfile.TemporaryDirectory(prefix="md-report-chromium-") as tmp:
        proc, ws_url = _launch(chromium, Path(tmp), width, height, timeout)
        cdp = None
        try:
            cdp = _CDP(ws_url, timeout)
            target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            sid = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                cdp.call(f"{domain}.enable", session=sid)
            cdp.call("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=sid)
            cdp.events.clear()
            cdp.call("Page.navigate", {"url": url}, session=sid)
            cdp.wait_event("Page.loadEventFired", time.monotonic() + timeout)
            info = cdp.call("Runtime.evaluate", {"expression": (
                "JSON.stringify({title: document.title, height: document.documentElement.scrollHeight, "
                "images: Array.from(document.images).map(i => ({src: i.getAttribute('src'), "
                "complete: i.complete, naturalWidth: i.naturalWidth}))})"), "returnByValue": True}, session=sid)
            page = json.loads(info["result"]["value"])
            result.title, result.images, result.page_height = page["title"], page["images"], int(page["height"])
            shot = {"format": "png"}
            if full_page:
                shot.update(captureBeyondViewport=True,
                            clip={"x": 0, "y": 0, "width": width, "height": result.page_height, "scale": 1})
            result.screenshot = base64.b64decode(cdp.call("Page.captureScreenshot", shot, session=sid)["data"])
            for ev in cdp.events:
                method, params = ev.get("method"), ev.get("params", {})
                if method == "Network.requestWillBeSent":
                    result.requests.append(params["request"]["url"])
                elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                    result.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                          for a in params.get("args", [])))
                elif method == "Runtime.exceptionThrown":
                    result.console_errors.append(str(params.get("exceptionDetails", {}).get("text", "exception")))
                elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                    entry = params["entry"]
                    result.console_errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
            try:
                cdp.call("Browser.close")
            except Exception:  # the browser may close the socket before answering
                pass
        finally:
            if cdp is not None:
                cdp.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return result
