"""Headless Chromium driven through the Chrome DevTools protocol (CDP) over a pipe.

`--remote-debugging-pipe` makes the browser read CDP commands from its fd 3 and write replies and
events to its fd 4, each message JSON ended by a NUL byte (what Puppeteer's pipe transport does):
no port, no websocket library. Every event is kept, so a test can look at all console messages,
exceptions, log entries and requests of the page.
"""

import fcntl
import json
import os
import select
import shutil
import subprocess
import time


class BrowserError(RuntimeError):
    pass


def find_chromium():
    """Debian's chromium (tests/browser-up.sh installs it), or $DLMATRIX_CHROMIUM; None where absent."""
    return os.environ.get("DLMATRIX_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, executable, profile_dir, timeout_s=60.0):
        self.timeout_s = timeout_s
        # The browser's ends are moved to 10 and above first, so that bash (dash takes single-digit descriptors
        # only) can put them on 3 and 4 whatever numbers os.pipe() gave.
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()
        reads = fcntl.fcntl(to_browser, fcntl.F_DUPFD, 10)
        writes = fcntl.fcntl(from_browser, fcntl.F_DUPFD, 10)
        os.close(to_browser), os.close(from_browser)
        args = [executable, "--headless", "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
                "--disable-gpu", "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
                "--user-data-dir={}".format(profile_dir)]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.log_path = os.path.join(str(profile_dir), "chromium.log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", 'exec 3<&{0} 4>&{1} {0}<&- {1}>&-; exec "$@"'.format(reads, writes), "bash"] + args,
                pass_fds=(reads, writes), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        os.close(reads), os.close(writes)
        self._buffer = b""
        self._next_id = 0
        self.events = []  # (method, params, sessionId) of every event received

    # -- protocol -----------------------------------------------------------------------------------------

    def send(self, method, params=None, session=None, timeout_s=None):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            reply = self._receive(deadline, "the reply to {}".format(method))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError("{}: {}".format(method, reply["error"]))
                return reply.get("result", {})

    def wait_for(self, method, session=None, timeout_s=None):
        """The first event `method` (of `session`) not yet waited for."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        seen = 0
        while True:
            for index in range(seen, len(self.events)):
                name, params, where = self.events[index]
                if name == method and (session is None or where == session) and not params.get("_waited"):
                    params["_waited"] = True
                    return params
            seen = len(self.events)
            self._receive(deadline, "event {}".format(method))

    def _receive(self, deadline, what):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("no {} from Chromium in time; its log: {}".format(what, self._log_tail()))
            ready, _, _ = select.select([self._replies], [], [], left)
            if ready:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise BrowserError("Chromium closed the pipe (exit {}); its log: {}".format(
                        self.process.poll(), self._log_tail()))
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message:
            self.events.append((message["method"], message.get("params", {}), message.get("sessionId")))
        return message

    def _log_tail(self):
        try:
            with open(self.log_path, "rb") as log:
                return log.read()[-2000:].decode("utf-8", "replace")
        except OSError as exc:
            return "unreadable ({})".format(exc)

    # -- a page ---------------------------------------------------------------------------------------------

    def open_page(self, url, width=1280, height=900):
        """A new tab showing `url`, loaded (its load event fired); returns its session id."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(domain + ".enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session=session)
        return session

    def evaluate(self, session, expression):
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                          session=session)
        if "exceptionDetails" in reply:
            raise BrowserError("page script failed: {}".format(reply["exceptionDetails"]))
        return reply["result"].get("value")

    def screenshot(self, session, full_page=False):
        """PNG bytes of the viewport, or of the whole page."""
        import base64

        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            size = self.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", params, session=session)["data"])

    def problems(self, session, allowed_schemes=("file", "data")):
        """What the page did wrong: console errors, uncaught exceptions, error log entries (a refused load,
        a policy violation) and requests other than to `allowed_schemes`."""
        found = []
        for method, params, where in self.events:
            if where != session:
                continue
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append("console.{}: {}".format(params["type"], " ".join(
                    str(arg.get("value", arg.get("description", ""))) for arg in params["args"])))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append("exception: {}".format((details.get("exception") or {}).get("description")
                                                    or details.get("text")))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append("log ({}): {} {}".format(params["entry"]["source"], params["entry"]["text"],
                                                      params["entry"].get("url", "")))
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if url.split(":", 1)[0] not in allowed_schemes:
                    found.append("request to {}".format(url))
        return found

    def close(self):
        try:
            self.send("Browser.close", timeout_s=10)
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands), os.close(self._replies)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
