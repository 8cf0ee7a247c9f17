"""The HTML report in a real browser: headless Chromium (Debian's `chromium` package), driven
through the DevTools protocol over a pipe (--remote-debugging-pipe: JSON messages ending in NUL
on fds 3 and 4), so no Python dependency and no port. With JavaScript on and off, the page must
show its key elements, make no network request, log no console error and open no dialog.

Set BACKCHECK_SCREENSHOT_DIR to keep the screenshots."""
from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reference.verdict import ERROR, FAILED, Verdict
from reports.demo import synthetic_verdicts
from reports.html import write_html
from reports.results import results_document

TIMEOUT = 30.0
XSS = "<script>alert(1)</script>"
# the page's own elements, present with JavaScript off: rendered on the server side
KEY_SELECTORS = ("header.top .overall", "#summary table tbody tr", "#run dl.meta", "#failures details.problem",
                 "#errors table tbody tr", "#plots svg.plot", "#accuracy table", "#all-verdicts tbody tr",
                 "pre.repro")


def chromium_path() -> str | None:
    return os.environ.get("BACKCHECK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """A headless Chromium and one page, spoken to in the DevTools protocol over a pipe."""

    def __init__(self, exe: str, profile_dir: Path, width: int = 1280, height: int = 900):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4. Park both ends above the
        # low fds first, so moving one into place cannot clobber the other.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w)]

        def child_fds():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
                f"--user-data-dir={profile_dir}", "--remote-debugging-pipe", "about:blank"]
        self._log = open(profile_dir / "chromium-stderr.log", "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     pass_fds=(3, 4), preexec_fn=child_fds)
        for fd in (to_chrome_r, from_chrome_w, *high):
            os.close(fd)
        self._next_id = 0
        self._replies: dict[int, queue.Queue] = {}
        self.events: list[dict] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._reader, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log", "DOM"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _reader(self):
        buf = b""
        while True:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for m in messages:
                msg = json.loads(m)
                if "id" in msg:
                    with self._lock:
                        self._replies.setdefault(msg["id"], queue.Queue()).put(msg)
                else:
                    self.events.append(msg)
                    if msg.get("method") == "Page.javascriptDialogOpening":  # never let a dialog block the page
                        self.send("Page.handleJavaScriptDialog", msg.get("sessionId"), accept=True)

    def send(self, method: str, session_id=None, **params) -> int:
        with self._lock:
            self._next_id += 1
            i = self._next_id
            self._replies.setdefault(i, queue.Queue())
        msg = {"id": i, "method": method, "params": params}
        if session_id:
            msg["sessionId"] = session_id
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        return i

    def call(self, method: str, session: bool = False, **params) -> dict:
        i = self.send(method, self.session if session else None, **params)
        try:
            reply = self._replies[i].get(timeout=TIMEOUT)
        except queue.Empty:
            raise TimeoutError(f"chromium did not answer {method} within {TIMEOUT:.0f} s") from None
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_for(self, method: str, after: int = 0) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for e in self.events[after:]:
                if e.get("method") == method:
                    return e
            time.sleep(0.02)
        raise TimeoutError(f"no {method} within {TIMEOUT:.0f} s")

    def open(self, url: str, javascript: bool = True) -> None:
        self.call("Emulation.setScriptExecutionDisabled", session=True, value=not javascript)
        start = len(self.events)
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired", start)
        time.sleep(0.3)  # late console messages and requests, if any, arrive now
        self.page_events = self.events[start:]

    def count(self, selector: str) -> int:
        root = self.call("DOM.getDocument", session=True, depth=0)["root"]["nodeId"]
        return len(self.call("DOM.querySelectorAll", session=True, nodeId=root, selector=selector)["nodeIds"])

    def outer_html(self, selector: str) -> str:
        root = self.call("DOM.getDocument", session=True, depth=0)["root"]["nodeId"]
        node = self.call("DOM.querySelector", session=True, nodeId=root, selector=selector)["nodeId"]
        return self.call("DOM.getOuterHTML", session=True, nodeId=node)["outerHTML"]

    def evaluate(self, expression: str):
        """A JavaScript expression's value in the page (JavaScript on only)."""
        r = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def text(self) -> str:
        """The page's text, read through the DOM (works with JavaScript off too)."""
        import html as _html
        import re
        body = re.sub(r"<(script|style)\b.*?</\1>", " ", self.outer_html("body"), flags=re.S)
        return _html.unescape(re.sub(r"<[^>]+>", " ", body))

    def screenshot(self, path: Path, max_height: int = 16000) -> bytes:
        size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        png = base64.b64decode(self.call("Page.captureScreenshot", session=True, format="png",
                                         captureBeyondViewport=True, clip=clip)["data"])
        path.write_bytes(png)
        return png

    def problems(self) -> dict[str, list]:
        """What the last page did that a self-contained, correct page must not do."""
        ev = self.page_events
        requests = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"]
        return {
            "network requests": [u for u in requests if not u.startswith(("file://", "data:"))],
            "console errors": [e["params"] for e in ev if e.get("method") == "Runtime.consoleAPICalled"
                               and e["params"].get("type") in ("error", "assert")]
                              + [e["params"]["entry"] for e in ev if e.get("method") == "Log.entryAdded"
                                 and e["params"]["entry"].get("level") == "error"],
            "exceptions": [e["params"] for e in ev if e.get("method") == "Runtime.exceptionThrown"],
            "dialogs": [e["params"] for e in ev if e.get("method") == "Page.javascriptDialogOpening"],
            "file requests": [u for u in requests if u.startswith("file://")],
        }

    def close(self):
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()  # our own child, by its handle
            self.proc.wait()
        finally:
            os.close(self._to_chrome)
            self._log.close()


@pytest.fixture
def browser(tmp_path):
    exe = chromium_path()
    if exe is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must have it for the report tests")
        pytest.skip(message)
    profile = tmp_path / "profile"
    profile.mkdir()
    b = Chromium(exe, profile)
    yield b
    b.close()


def _keep(png_path: Path) -> None:
    keep = os.environ.get("BACKCHECK_SCREENSHOT_DIR")
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copy(png_path, Path(keep) / png_path.name)


def assert_clean(b: Chromium, page_url: str) -> None:
    p = b.problems()
    assert p["network requests"] == [], f"the report made network requests: {p['network requests']}"
    assert p["file requests"] == [page_url], f"the report loaded other files: {p['file requests']}"
    assert p["console errors"] == [], f"console errors: {p['console errors']}"
    assert p["exceptions"] == [], f"script exceptions: {p['exceptions']}"
    assert p["dialogs"] == [], f"the page opened dialogs: {p['dialogs']}"


def _report(tmp_path, verdicts, meta=None) -> tuple[Path, str]:
    path = tmp_path / "report.html"
    write_html(results_document(verdicts, meta or {"hypothesis_profile": "ci"}), path)
    return path, path.resolve().as_uri()


def test_report_renders_with_javascript_on_and_off(tmp_path, browser):
    verdicts = synthetic_verdicts(1500, seed=3)
    path, url = _report(tmp_path, verdicts)
    for js in (True, False):
        browser.open(url, javascript=js)
        png = browser.screenshot(tmp_path / f"report-js-{'on' if js else 'off'}.png")
        _keep(tmp_path / f"report-js-{'on' if js else 'off'}.png")
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, "the screenshot is not a real image"
        assert_clean(browser, url)
        for sel in KEY_SELECTORS:
            assert browser.count(sel) > 0, f"missing {sel!r} with JavaScript {'on' if js else 'off'}"
        assert browser.count("#plots svg.plot") == 3  # the fourth: no step curve in this document
        assert "FAILED" in browser.outer_html("header.top .overall")
        # the script's additions exist exactly when scripts run
        assert browser.count("#verdict-filter") == (1 if js else 0)
        assert browser.count("button.copy") == (browser.count("pre.repro") if js else 0)
        assert browser.count("html.js") == (1 if js else 0)
    # with JavaScript on: a heading click sorts the table, the box filters its rows
    browser.open(url, javascript=True)
    checks = "Array.from(document.querySelectorAll('#all-verdicts tbody tr')).map(r => r.cells[1].textContent)"
    browser.evaluate("document.querySelector('#all-verdicts thead th:nth-child(2)').click()")
    shown = browser.evaluate(checks)
    assert shown == sorted(shown) and len(shown) == 500
    browser.evaluate("var f = document.getElementById('verdict-filter'); f.value = 'perceptron_bound';"
                     "f.dispatchEvent(new Event('input'))")
    visible = browser.evaluate("Array.from(document.querySelectorAll('#all-verdicts tbody tr'))"
                               ".filter(r => !r.hidden).map(r => r.cells[1].textContent)")
    assert visible and set(visible) == {"perceptron_bound"}
    assert [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"] == []


# every element painted red (text, background, a border that is drawn, an SVG fill or stroke), as the browser computes it
RED_ELEMENTS = """(() => {
  const out = [];
  function red(c, alpha) {
    const m = /rgba?\\((\\d+), (\\d+), (\\d+)(?:, ([\\d.]+))?\\)/.exec(c);
    if (!m) return false;
    const r = +m[1], g = +m[2], b = +m[3], a = (m[4] === undefined ? 1 : +m[4]) * alpha;
    return a > 0.05 && r >= 144 && r > 2 * g && r > 2 * b;
  }
  for (const el of document.querySelectorAll("body *")) {
    const s = getComputedStyle(el), svg = el instanceof SVGElement;
    const paints = [["color", 1], ["background-color", 1]];
    if (parseFloat(s.borderLeftWidth) > 0) paints.push(["border-left-color", 1]);
    if (svg) paints.push(["fill", parseFloat(s.fillOpacity)], ["stroke", s.stroke === "none" ? 0 : 1]);
    for (const [p, alpha] of paints) {
      if ((p !== "color" || el.childElementCount === 0 && el.textContent.trim()) && red(s.getPropertyValue(p), alpha)) {
        out.push(el.tagName.toLowerCase() + "." + (el.getAttribute("class") || "") + " " + p);
        break;
      }
    }
  }
  return out;
})()"""


def test_a_passing_report_has_no_red_anywhere_and_a_failing_one_does(tmp_path, browser):
    """A passing run whose not-checkable verdicts carry "error 1" against huge bounds is green and
    grey all through, as rendered; the same run with one real failure is red where it failed."""
    from reports.demo import passing_verdicts
    passing = passing_verdicts(400, seed=4)
    failure = Verdict("vs_jax", FAILED, "numpy-builtin", Verdict.from_json(passing[0]).spec, "the one failure",
                      max_error=0.4, worst_error=0.4, bound=1e-10, n_entries=21,
                      worst=Verdict.from_json(passing[0]).worst).to_json()
    for name, verdicts, expect_red in (("passing", passing, False), ("failing", passing + [failure], True)):
        path = tmp_path / f"{name}.html"
        write_html(results_document(verdicts, {"hypothesis_profile": "ci"}), path)
        url = path.resolve().as_uri()
        browser.open(url, javascript=True)
        browser.screenshot(tmp_path / f"report-{name}.png")
        _keep(tmp_path / f"report-{name}.png")
        assert_clean(browser, url)
        browser.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # hidden parts too
        red = browser.evaluate(RED_ELEMENTS)
        if expect_red:
            assert any("s-failed" in r for r in red) and any(r.startswith("rect.") for r in red), red
        else:
            assert red == [], f"red in a passing report: {red[:10]}"
        assert "1e+00" not in browser.text() and "1.0e+00" not in browser.text()


# where the first diagnosis headline is drawn, and whether it is drawn at all
HEADLINE_BOX = """(() => {
  const el = document.querySelector("#diagnosis p.headline"), r = el.getBoundingClientRect(), s = getComputedStyle(el);
  return {text: el.textContent, top: r.top, bottom: r.bottom, width: r.width, viewport: window.innerHeight,
          shown: s.visibility === "visible" && s.display !== "none" && +s.opacity > 0,
          first: document.querySelector("main section").id};
})()"""


def test_a_failing_student_report_leads_with_its_diagnosis(tmp_path, browser):
    """The student example (examples/buggy_student.py), run in-process on the fixed cases it
    declares and diagnosed as a pytest session does: the first thing on the page, in the first
    screenful, is the diagnosis headline; the details are there, collapsed."""
    from test_report_diagnosis import student_doc
    doc = student_doc()
    [d] = doc["diagnoses"]
    path = tmp_path / "student.html"
    write_html(doc, path)
    url = path.resolve().as_uri()
    browser.open(url, javascript=True)
    browser.screenshot(tmp_path / "student.png", max_height=2400)
    _keep(tmp_path / "student.png")
    os.makedirs("/tmp/shots", exist_ok=True)
    shutil.copy(tmp_path / "student.png", "/tmp/shots/student.png")
    assert_clean(browser, url)
    box = browser.evaluate(HEADLINE_BOX)
    assert box["text"] == d["headline"] + "." and box["first"] == "diagnosis", box
    assert box["shown"] and box["width"] > 0 and 0 <= box["top"] < box["bottom"] <= box["viewport"], box
    assert "FAILED" in browser.outer_html("header.top .overall")
    assert browser.count("#diagnosis pre.repro") == 1 and browser.count("#diagnosis button.copy") == 1
    assert browser.evaluate("document.querySelectorAll('details[open]').length") == 0   # details collapsed
    browser.open(url, javascript=False)   # the lead is the server's markup: there without the script too
    assert browser.count("#diagnosis p.headline") == 1 and d["headline"] in browser.text()


def test_script_injection_from_a_plugin_shows_as_text(tmp_path, browser):
    evil = [
        Verdict("load", ERROR, XSS, message=f"importing {XSS} failed: <img src=x onerror=alert(2)>").to_json(),
        Verdict("vs_jax", FAILED, XSS, case=f"case {XSS}", max_error=0.5, bound=1e-10,
                reproducer=f"print('{XSS}')", extra={"test": f"test_x[{XSS}]"}).to_json(),
    ]
    path, url = _report(tmp_path, evil + synthetic_verdicts(40, seed=1))
    for js in (True, False):
        browser.open(url, javascript=js)
        assert_clean(browser, url)  # no alert dialog, no request for the image "x", no CSP error
        text = browser.text()
        assert XSS in text, "the plug-in's name is not shown as text"
        assert "<img src=x onerror=alert(2)>" in text
        assert browser.count("img") == 0
        assert browser.count("script") == 1  # ours only


def test_the_browser_check_sees_requests_console_errors_and_dialogs(tmp_path, browser):
    """The assertions above are only worth something if they can fail: a page that fetches,
    logs an error and alerts must be caught on all three counts."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><title>bad</title><img src="http://192.0.2.1/x.png">'
                    '<script>console.error("boom"); alert("hi")</script>')
    browser.open(page.resolve().as_uri(), javascript=True)
    p = browser.problems()
    assert p["network requests"] == ["http://192.0.2.1/x.png"]
    assert any("boom" in json.dumps(e) for e in p["console errors"])
    assert len(p["dialogs"]) == 1


# --- end to end: `backcheck check` on a mutant, from an empty folder ------------------------

MUTANT = "implementations.mutants:SignFlip"
# one small fixed case (seed 002's 2-2-1 network): every gradient check runs once, and its shape
# bucket is the step curve's, so the run compiles little
SELECTION = "seed002"


def test_backcheck_check_on_a_mutant_writes_a_report_whose_reproducers_reproduce(tmp_path):
    """`backcheck check` in a fresh folder writes backcheck-report/{results.json,report.html} and
    prints their paths; the mutant's failures are in the report with their reproducers; one
    reproducer, run as written, reproduces its failure; the real report passes the browser checks."""
    exe = shutil.which("backcheck")
    cmd = [exe] if exe else [sys.executable, "-m", "backcheck.cli"]
    proc = subprocess.run(cmd + ["check", "--impl", MUTANT, "-k", SELECTION], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 1, f"a mutant must fail the check:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    out = tmp_path / "backcheck-report"
    assert "backcheck: wrote" in proc.stdout and "backcheck-report/results.json" in proc.stdout
    assert "HTML report: backcheck-report/report.html" in proc.stdout

    from reports.results import read_results
    doc = read_results(out / "results.json")
    assert doc["meta"]["implementations"] == [MUTANT]
    assert len(doc["meta"]["step_curve"]["points"]) > 10, "the step curve is computed and stored for `backcheck report`"
    failed = [Verdict.from_json(v) for v in doc["verdicts"] if v["status"] == "failed"]
    assert {v.check for v in failed} >= {"vs_jax", "vs_fd"}, [v.check for v in failed]
    page = (out / "report.html").read_text()
    import html as _html
    for v in failed:
        assert v.reproducer and _html.escape(v.reproducer) in page, f"{v.check}: reproducer missing from the report"

    # the reproducer, run as written (in a folder of its own), reproduces the failure
    vs_jax = next(v for v in failed if v.check == "vs_jax")
    script = tmp_path / "repro" / "reproduce.py"
    script.parent.mkdir()
    script.write_text(vs_jax.reproducer + "\n")
    rerun = subprocess.run([sys.executable, str(script)], cwd=script.parent, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.startswith(f"[failed] vs_jax {vs_jax.implementation}"), rerun.stdout[:500]
    assert str(vs_jax.worst) in rerun.stdout

    exe = chromium_path()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI: apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium); the rest of this test passed")
    (tmp_path / "profile").mkdir()
    b = Chromium(exe, tmp_path / "profile")
    try:
        url = (out / "report.html").resolve().as_uri()
        for js in (True, False):
            b.open(url, javascript=js)
            name = f"check-report-js-{'on' if js else 'off'}.png"
            b.screenshot(tmp_path / name)
            _keep(tmp_path / name)
            assert_clean(b, url)
            assert b.count("#failures details.problem") == len(failed)
            # error distribution, heatmap and the step curve; this run has no perceptron check to plot
            assert b.count("#plots svg.plot") == 3
            assert "No perceptron verdict" in b.outer_html("#plots")
            assert "FAILED" in b.outer_html("header.top .overall")
    finally:
        b.close()
