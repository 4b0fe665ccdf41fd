"""Open a page in headless Chromium and report what a reader's browser saw: every image's
natural size, console errors, uncaught exceptions, failed loads, every URL requested and the
values of any JavaScript expressions asked for.

Speaks the Chrome DevTools Protocol over `--remote-debugging-pipe` (JSON messages separated
by NUL bytes on file descriptors 3 and 4), so it needs no websocket library and opens no port.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
)
IMAGES = "Array.from(document.images, i => [i.getAttribute('alt'), i.complete, i.naturalWidth])"


def find_chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)


@dataclass
class PageReport:
    images: list[tuple[str, bool, int]] = field(default_factory=list)  # alt, complete, width
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    values: dict[str, object] = field(default_factory=dict)  # name -> value of an expression


def open_page(
    path: Path, executable: str, timeout: float = 60.0, evaluate: dict[str, str] | None = None
) -> PageReport:
    """Load ``path`` in a fresh headless Chromium profile and return what it saw, with the
    value of each JavaScript expression in ``evaluate`` (name -> expression) once loaded."""
    with tempfile.TemporaryDirectory() as profile:
        browser = _Pipe(executable, profile, timeout)
        try:
            return browser.inspect(path.resolve().as_uri(), evaluate or {})
        finally:
            browser.close()


class _Pipe:
    """One Chromium process driven through its DevTools pipe."""

    def __init__(self, executable: str, profile: str, timeout: float):
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def child_fds():  # the pipe ends become fds 3 (commands in) and 4 (replies out)
            a = fcntl.fcntl(to_browser, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_browser, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.process = subprocess.Popen(
            args,
            pass_fds=(3, 4),
            preexec_fn=child_fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self.deadline = time.monotonic() + timeout
        self.events: list[dict] = []
        self.buffer, self.next_id = b"", 0

    def inspect(self, url: str, evaluate: dict[str, str]) -> PageReport:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session=session)
        self.call("Page.navigate", session=session, url=url)
        self.wait_for("Page.loadEventFired", session)
        images = self.call(
            "Runtime.evaluate", session=session, expression=IMAGES, returnByValue=True
        )["result"]["value"]
        report = PageReport(images=[tuple(i) for i in images])
        for name, expression in evaluate.items():
            reply = self.call(
                "Runtime.evaluate", session=session, expression=expression, returnByValue=True
            )
            report.values[name] = reply["result"].get("value")
        for event in self.events:
            _collect(event, report)
        return report

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.receive()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self.receive())

    def receive(self) -> dict:
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._write, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write)
        os.close(self._read)


def _collect(event: dict, report: PageReport) -> None:
    """Sort one DevTools event into the report."""
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
        text = " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
        report.errors.append(f"console.{params['type']}: {text}")
    elif method == "Runtime.exceptionThrown":
        report.errors.append(f"exception: {params['exceptionDetails'].get('text')}")
    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
        report.errors.append(f"log: {params['entry']['text']}")
    elif method == "Network.loadingFailed":
        report.errors.append(f"load failed: {params.get('errorText')}")
    elif method == "Network.requestWillBeSent":
        report.requests.append(params["request"]["url"][:80])
