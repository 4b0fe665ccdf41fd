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

import pytest

FLAGS = (
    "--headless",
    "--window-size=1024,800",  # a small laptop: the report's tables must fit its width
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


def ensure(binary: str, package: str) -> str:
    """The path of ``binary``, installing the Debian ``package`` when missing and possible;
    skips the test (saying why) when it cannot be had."""
    found = shutil.which(binary)
    if found is None and shutil.which("apt-get"):
        for command in (
            ["apt-get", "install", "-y", "--no-install-recommends", package],
            ["sh", "-c", f"apt-get update && apt-get install -y {package}"],
        ):
            if subprocess.run(command, capture_output=True, timeout=900).returncode == 0:
                break
        found = shutil.which(binary)
    if found is None:
        pytest.skip(f"{binary} is not installed and `apt-get install {package}` failed")
    return found


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


# A web application (the MLflow UI): wait for what it shows, click, type, take screenshots.

WAIT_UNTIL = """new Promise(resolve => {
  const end = Date.now() + %d;
  const check = () => {
    const ok = Boolean((() => (%s))());
    if (ok || Date.now() > end) {
      requestAnimationFrame(() => requestAnimationFrame(() => resolve(ok)));
    } else {
      setTimeout(check, 100);
    }
  };
  check();
})"""
SHOWS_TEXTS = "%s.every(t => document.body && document.body.innerText.includes(t))"
CENTER_OF = """(() => {
  const visible = e => e.getClientRects().length > 0;
  const css = %s, text = %s;
  const found = css
    ? [...document.querySelectorAll(css)].filter(visible)
    : [...document.querySelectorAll("body *")].filter(
        e => visible(e) && e.innerText && e.innerText.trim() === text);
  const target = css ? found[0] : found[found.length - 1];
  if (!target) return null;
  const r = target.getBoundingClientRect();
  return [r.x + r.width / 2, r.y + r.height / 2];
})()"""
FOCUS_INPUT = """(() => {
  const input = document.querySelector(`input[placeholder=${JSON.stringify(%s)}]`);
  if (input) input.focus();
  return Boolean(input);
})()"""


@contextlib.contextmanager
def app_page(
    executable: str,
    size: tuple[int, int] = (1600, 1000),
    storage: dict[str, str] | None = None,
    timeout: float = 180.0,
):
    """A page of a fresh headless Chromium profile at ``size`` (CSS pixels) whose
    localStorage holds ``storage`` before any page script runs; everything done with it must
    end within ``timeout`` seconds of opening."""
    with tempfile.TemporaryDirectory() as profile:
        browser = _Pipe(executable, profile, timeout)
        try:
            yield AppPage(browser, size, storage or {})
        finally:
            browser.close()


class AppPage:
    """One tab of an `app_page` browser, used as a reader would: waits on what the page
    shows (checked in the page every 100 ms, each wait bounded), never on fixed delays."""

    def __init__(self, browser: _Pipe, size: tuple[int, int], storage: dict[str, str]):
        self.browser = browser
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        attached = browser.call("Target.attachToTarget", targetId=target, flatten=True)
        self.session = attached["sessionId"]
        width, height = size
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.enable")
        setup = "".join(
            f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});" for k, v in storage.items()
        )
        self.call("Page.addScriptToEvaluateOnNewDocument", source=setup)

    def call(self, method: str, **params) -> dict:
        return self.browser.call(method, session=self.session, **params)

    def evaluate(self, expression: str):
        reply = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        return reply["result"].get("value")

    def goto(self, url: str) -> None:
        """Navigate; wait for the load event unless only the URL's fragment changed."""
        self.browser.events.clear()
        if "loaderId" in self.call("Page.navigate", url=url):  # a new document
            self.browser.wait_for("Page.loadEventFired", self.session)

    def wait_until(self, condition: str, timeout: float) -> bool:
        """Whether the JavaScript expression ``condition`` held within ``timeout`` seconds
        (then two frames are let render)."""
        return self.evaluate(WAIT_UNTIL % (int(timeout * 1000), condition))

    def text_showing(self, texts: list[str], timeout: float) -> str:
        """The page's visible text once it shows every one of ``texts``, or at the timeout."""
        self.wait_until(SHOWS_TEXTS % json.dumps(texts), timeout)
        return self.evaluate("document.body.innerText")

    def click(self, css: str | None = None, text: str | None = None) -> None:
        """Click, with the mouse, the first visible element matching the CSS selector
        ``css``, or the last whose whole visible text is ``text`` (a menu item, a button)."""
        where = self.evaluate(CENTER_OF % (json.dumps(css), json.dumps(text)))
        if where is None:
            raise LookupError(f"nothing visible to click: {css or text!r}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=where[0],
                y=where[1],
                button="left",
                clickCount=1,
            )

    def type_into(self, placeholder: str, text: str, timeout: float = 30) -> None:
        """Type ``text`` into the input whose placeholder is ``placeholder``, once shown."""
        if not self.wait_until(FOCUS_INPUT % json.dumps(placeholder), timeout):
            raise LookupError(f"no input with placeholder {placeholder!r}")
        self.call("Input.insertText", text=text)

    def screenshot(self, path: Path) -> None:
        """A PNG of the viewport, the mouse moved off the page first (no hover effects)."""
        import base64

        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=0, y=0)
        self.wait_until("true", 1)  # two frames: the hover effects gone
        png = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(png))
