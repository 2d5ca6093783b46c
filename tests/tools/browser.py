"""A real browser for the reports' tests: Debian's Chromium, headless, driven over the DevTools
protocol through a pipe (--remote-debugging-pipe), so no driver, no port and no extra package.

    with Browser() as browser:
        page = browser.open(path, screenshot=png_path)
        page.console_errors, page.requests, page.texts["rto"], page.attributes["rto"]

`open` loads a file:// page, waits for its load event and reports what a person (and a careful
reviewer) would look at: every console message of level error and every uncaught exception, every
request the page made besides its own document, the text and data- attributes of each element that
has an id, the number of <script> elements, and a full-page screenshot.
"""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

EXECUTABLES = ["chromium", "chromium-browser", "google-chrome"]


def find_chromium():
    """The browser's path, or None."""
    for name in EXECUTABLES:
        path = shutil.which(name)
        if path:
            return path
    return None


def missing():
    """One line saying why the browser tests cannot run here, or None when they can."""
    if find_chromium():
        return None
    return "chromium is not installed (make test installs Debian's chromium when run as root)"


class BrowserError(Exception):
    pass


class Page:
    def __init__(self, url):
        self.url = url
        self.console_errors = []
        self.requests = []
        self.texts = {}
        self.duplicate_ids = []
        self.attributes = {}
        self.scripts = None
        self.title = None
        self.lang = None
        self.screenshot = None


# Run inside the page by the test (the page itself has no script): each element with an id, its
# text and data- attributes; the <script> count; the title and the document's language.
READ_PAGE = """JSON.stringify({
  ids: Array.from(document.querySelectorAll('[id]')).map(e => [e.id, e.textContent.trim(), Object.assign({}, e.dataset)]),
  scripts: document.scripts.length,
  title: document.title,
  lang: document.documentElement.lang
})"""


class Browser:
    """One headless Chromium for a test; pages are opened one after another in fresh tabs."""

    def __init__(self, executable=None, timeout=60):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError(missing())
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="lifeboat-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child's ends moved above 9: the shell's `3<&N 4>&M` must not overwrite one with the other.
        to_browser_r, from_browser_w = (self._above_nine(fd) for fd in (to_browser_r, from_browser_w))
        # Chromium reads commands on fd 3 and writes answers on fd 4.
        argv = [self.executable, "--headless", "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--mute-audio", "--hide-scrollbars", "--window-size=1280,900"]
        if os.geteuid() == 0:
            argv.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        shell = 'exec "$@" 3<&%d 4>&%d' % (to_browser_r, from_browser_w)
        # bash: dash takes single-digit descriptors only.
        self.proc = subprocess.Popen(["bash", "-c", shell, "bash", *argv], pass_fds=(to_browser_r, from_browser_w),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events = []

    @staticmethod
    def _above_nine(fd):
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return moved

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.proc.poll() is None:
            try:
                self._send("Browser.close")
                self.proc.wait(timeout=10)
            except (BrowserError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    # The protocol: JSON messages, each ended by a NUL byte, in both directions.
    def _send(self, method, params=None, session=None):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _read(self, deadline):
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("chromium did not answer in time")
            if self.proc.poll() is not None:
                raise BrowserError("chromium exited: " + self.proc.stderr.read().decode(errors="replace")[-2000:])
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed its pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, session=None):
        """Send one command and return its result; events that arrive meanwhile are kept."""
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._read(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._events.append(message)

    def _wait_for(self, method, session, deadline):
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(index)
            self._events.append(self._read(deadline))

    def open(self, path, screenshot=None, media=None, width=1280):
        """Load the file at `path` in a new tab; the Page seen. `media` "print" lays it out as printed."""
        url = Path(path).resolve().as_uri()
        page = Page(url)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable", session=session)
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
            if media:
                self.call("Emulation.setEmulatedMedia", {"media": media}, session=session)
            self._events = [e for e in self._events if e.get("sessionId") != session]
            self.call("Page.navigate", {"url": url}, session=session)
            deadline = time.monotonic() + self.timeout
            self._wait_for("Page.loadEventFired", session, deadline)
            # Anything the page would still fetch or log after its load event: a short settle.
            settle = time.monotonic() + 0.5
            while time.monotonic() < settle:
                self.call("Runtime.evaluate", {"expression": "1"}, session=session)
                time.sleep(0.1)
            seen = json.loads(self.call("Runtime.evaluate", {"expression": READ_PAGE, "returnByValue": True},
                                        session=session)["result"]["value"])
            for element_id, text, data in seen["ids"]:
                if element_id in page.texts:
                    page.duplicate_ids.append(element_id)
                page.texts[element_id] = text
                page.attributes[element_id] = data
            page.scripts, page.title, page.lang = seen["scripts"], seen["title"], seen["lang"]
            if screenshot:
                shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                 session=session)
                # 0600 like the evidence it lies beside.
                descriptor = os.open(screenshot, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(descriptor, "wb") as out:
                    out.write(base64.b64decode(shot["data"]))
                page.screenshot = Path(screenshot)
            for event in self._events:
                if event.get("sessionId") != session:
                    continue
                method, params = event.get("method"), event.get("params", {})
                if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                    page.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                        for a in params.get("args", [])))
                elif method == "Runtime.exceptionThrown":
                    page.console_errors.append(params.get("exceptionDetails", {}).get("text", "exception"))
                elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                    page.console_errors.append(params["entry"].get("text", ""))
                elif method == "Network.requestWillBeSent":
                    requested = params.get("request", {}).get("url", "")
                    if requested != url:
                        page.requests.append(requested)
        finally:
            self._events = [e for e in self._events if e.get("sessionId") != session]
            self.call("Target.closeTarget", {"targetId": target})
        return page
