"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages
ended by NUL on fds 3 and 4), for the browser test of `--format html`.

Chromium's own switches cannot do what the test needs: `--blink-settings=scriptEnabled=false` makes
`--dump-dom` and `--screenshot` print nothing (they run script in the page themselves). Over the protocol,
`Emulation.setScriptExecutionDisabled` turns JavaScript off for the page before it loads, and the same
session gives the DOM as the browser built it, a screenshot and the page's laid-out height."""
from __future__ import annotations

import base64
import json
import math
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

FLAGS = ("--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--disable-sync", "--mute-audio")


def executable() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One Chromium process; `load` opens a page with JavaScript off and returns (DOM, PNG bytes, height)."""

    def __init__(self, profile: Path, timeout: float = 60.0) -> None:
        self.timeout = timeout
        to_browser, self._write = os.pipe()  # Chromium reads commands on its fd 3
        self._read, from_browser = os.pipe()  # and writes answers and events on its fd 4
        # fds 3 and 4 in Chromium, by way of two high numbers (either pipe end may itself be 3 or 4 here)
        launcher = (f"exec 90<&{to_browser} 91>&{from_browser}; exec 3<&90 4>&91 90<&- 91>&-; "
                    "exec \"$0\" \"$@\"")
        self.process = subprocess.Popen(
            ["bash", "-c", launcher, executable() or "chromium", *FLAGS, "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "about:blank"], pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _next(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._read], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"Chromium said nothing for {self.timeout:.0f} s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe (it exited)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def wait_for(self, method: str, session: str) -> dict:
        for i, event in enumerate(self.events):
            if event.get("method") == method and event.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            event = self._next()
            if event.get("method") == method and event.get("sessionId") == session:
                return event
            self.events.append(event)

    def load(self, page: Path, width: int, height: int = 200) -> tuple[str, bytes, int]:
        """`page` opened in a new tab `width` wide with JavaScript disabled: its DOM as the browser serialises
        it, the laid-out height of the whole page (CSS pixels; the window is `height` tall while it loads),
        and a screenshot of the whole page (the window resized to that height)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Emulation.setScriptExecutionDisabled", {"value": True}, session)
        self._window(session, width, height)
        self.send("Page.enable", {}, session)
        self.send("Page.navigate", {"url": page.resolve().as_uri()}, session)
        self.wait_for("Page.loadEventFired", session)
        root = self.send("DOM.getDocument", {"depth": -1}, session)["root"]["nodeId"]
        tree = self.send("DOM.getOuterHTML", {"nodeId": root}, session)["outerHTML"]
        full = math.ceil(self.send("Page.getLayoutMetrics", {}, session)["cssContentSize"]["height"])
        self._window(session, width, full)
        shot = base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"}, session)["data"])
        self.send("Target.closeTarget", {"targetId": target})
        return tree, shot, full

    def _window(self, session: str, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False}, session)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write)
        os.close(self._read)
