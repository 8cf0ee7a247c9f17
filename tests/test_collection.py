"""Verdict collection by the pytest plugin: every recorded verdict reaches the JSON exactly once,
serially and under pytest-xdist (per-worker records merged on the controller)."""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path


# A small suite that records known verdicts in every way a test can: several per test, from a
# fixture's setup and teardown, then failing, then skipping, parametrized, and from a fixture
# whose setup errors after recording. Each test also notes which process ran it.
SUITE = '''
import os
import pytest
from reference.verdict import Entry, Verdict

def _v(check, status="passed", **kw):
    return Verdict(check, status, implementation="impl-" + check, spec={"n_in": 2, "layers": [{"width": 1, "activation": "tanh"}],
                   "loss": "mse", "l2": 0.0, "dtype": "float64"}, max_error=1e-12, bound=1e-10,
                   worst=Entry(1, "W", (0, 1)), worst_values=(0.5, 0.5), **kw)

@pytest.fixture(autouse=True)
def _where(request):
    with open(os.path.join(os.environ["WHERE_DIR"], request.node.name.replace("/", "_")), "w") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "serial"))

@pytest.fixture
def recorded_around(record):
    record(_v("setup_phase"))
    yield
    record(_v("teardown_phase"))

@pytest.fixture
def broken(record):
    record(_v("load", "error", message="fixture setup failed after recording"))
    raise RuntimeError("setup fails")

def test_one(record):
    record(_v("vs_jax"))

def test_three(record):
    for i in range(3):
        record(_v("vs_fd", case=f"case {i}"))

def test_fixture_phases(record, recorded_around):
    record(_v("call_phase"))

def test_records_then_fails(record):
    record(_v("slide_fd", "failed", reproducer="print('repro')"))
    assert False, "this failure is expected"

def test_records_then_skips(record):
    record(_v("directional", "not_checkable", message="skipped after recording"))
    pytest.skip("expected")

def test_setup_error(broken):
    pass

@pytest.mark.parametrize("k", range(12))
def test_param(record, k):
    record(_v("richardson", case=f"param {k}", extra={"k": k}))

def test_no_verdict():
    pass
'''
EXPECTED_CHECKS = Counter({"vs_jax": 1, "vs_fd": 3, "setup_phase": 1, "call_phase": 1, "teardown_phase": 1,
                           "slide_fd": 1, "directional": 1, "load": 1, "richardson": 12})


def run_suite(tmp_path: Path, name: str, *args) -> dict:
    where = tmp_path / f"where-{name}"
    where.mkdir()
    out = tmp_path / f"{name}.json"
    # a clean pytest environment: not the outer run's xdist worker id, addopts or current test
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["WHERE_DIR"] = str(where)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--no-header",
                           "--backcheck-no-step-curve", f"--backcheck-json={out}", "test_suite.py", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, f"the suite should have exactly its expected failures:\n{proc.stdout}\n{proc.stderr}"
    assert "1 failed" in proc.stdout and "1 error" in proc.stdout and "1 skipped" in proc.stdout, proc.stdout
    doc = json.loads(out.read_text())
    doc["where"] = {p.name: p.read_text() for p in where.iterdir()}
    doc["stdout"] = proc.stdout
    return doc


def _multiset(doc) -> Counter:
    return Counter(json.dumps(v, sort_keys=True) for v in doc["verdicts"])


def test_serial_and_xdist_runs_record_every_verdict_exactly_once(tmp_path):
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(SUITE))
    serial, xdist = run_suite(tmp_path, "serial"), run_suite(tmp_path, "xdist", "-n", "2")

    assert Counter(v["check"] for v in serial["verdicts"]) == EXPECTED_CHECKS
    assert set(serial["where"].values()) == {"serial"}
    assert set(xdist["where"].values()) == {"gw0", "gw1"}, "both workers must have run tests"
    assert _multiset(xdist) == _multiset(serial), "per-worker records merged without loss or duplicates"
    assert xdist["meta"]["workers"] == 2 and serial["meta"]["workers"] == 0

    # the fields survive the trip from worker to controller
    by_check = {v["check"]: v for v in xdist["verdicts"]}
    assert by_check["vs_jax"]["extra"]["test"] == "test_suite.py::test_one"
    assert by_check["slide_fd"]["status"] == "failed" and by_check["slide_fd"]["reproducer"] == "print('repro')"
    assert by_check["vs_jax"]["worst"] == {"layer": 1, "param": "W", "index": [0, 1]}
    assert by_check["load"]["message"] == "fixture setup failed after recording"
    assert "step_curve" not in serial["meta"]  # --backcheck-no-step-curve
    for key in ("finished", "duration", "hypothesis_profile", "seed", "versions", "implementations"):
        assert key in serial["meta"], key


NESTED = '''
import pytest
from reference.verdict import Verdict

def test_outer_before(record):
    record(Verdict("outer_before", "passed"))

def test_inner_session_in_process(record, tmp_path):
    (tmp_path / "test_inner.py").write_text(
        "from reference.verdict import Verdict\\n"
        "def test_inner(record):\\n    record(Verdict('inner', 'passed'))\\n")
    code = pytest.main([str(tmp_path / "test_inner.py"), "-q", "-p", "no:cacheprovider", "--backcheck-no-step-curve",
                        f"--backcheck-json={tmp_path / 'inner.json'}"])
    assert code == 0
    import json
    inner = json.loads((tmp_path / "inner.json").read_text())
    assert [v["check"] for v in inner["verdicts"]] == ["inner"]
    record(Verdict("outer_during", "passed"))

def test_outer_after(record):
    record(Verdict("outer_after", "passed"))
'''


def test_a_nested_in_process_session_does_not_take_the_outer_verdicts(tmp_path):
    """`backcheck check` runs pytest in-process: a session started inside a test (as a user's
    test of the CLI would) must keep its verdicts apart from the outer session's."""
    (tmp_path / "test_nested.py").write_text(NESTED)
    out = tmp_path / "outer.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--backcheck-no-step-curve",
                           f"--backcheck-json={out}", "test_nested.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = [v["check"] for v in json.loads(out.read_text())["verdicts"]]
    assert sorted(checks) == ["outer_after", "outer_before", "outer_during"]


def test_outputs_are_announced_once_and_junit_properties_are_json(tmp_path):
    """Under xdist, the controller (only) says where each output went; the verdicts reach
    --junitxml as JSON <property> values, the same records as the JSON results."""
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(SUITE))
    junit, html = tmp_path / "junit.xml", tmp_path / "out" / "report.html"
    doc = run_suite(tmp_path, "xdist", "-n", "2", f"--junitxml={junit}", f"--backcheck-report={html}")
    n = sum(EXPECTED_CHECKS.values())
    lines = [l for l in doc["stdout"].splitlines() if l.startswith("backcheck: ")]
    assert lines == [f"backcheck: wrote {n} verdicts to {tmp_path / 'xdist.json'}",
                     f"backcheck: wrote the HTML report of {n} verdicts to {html}"], doc["stdout"]
    assert html.exists()
    values = [p.get("value") for p in ET.parse(junit).iter("property") if p.get("name") == "backcheck_verdict"]
    records = [json.loads(v) for v in values]  # a Python repr ({'check': ...}) would not parse
    assert all(isinstance(r, dict) for r in records)
    assert _multiset({"verdicts": records}) == _multiset(doc)


def test_a_check_test_failing_without_a_verdict_is_an_error_verdict(tmp_path):
    """A test that fails without recording why (Hypothesis's Flaky, a bare assert) must not leave
    the summary reading PASSED while pytest exits 1; a skip records nothing of the kind."""
    import subprocess
    import sys
    (tmp_path / "test_silent.py").write_text(
        "import pytest\n"
        "def test_fails_silently(impl):\n    assert False, 'flaky'\n"
        "def test_skipped(impl):\n    pytest.skip('not declared: x')\n")
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_silent.py"),
                           f"--backcheck-json={out}"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    verdicts = json.loads(out.read_text())["verdicts"]
    assert [(v["status"], v["message"]) for v in verdicts] == [
        ("error", "the test failed without a verdict: AssertionError: flaky")]
