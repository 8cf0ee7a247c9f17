"""Fail fast on load (backcheck/plugin.py): an implementation that cannot be loaded, or does not
follow the protocol, is reported once, before anything is collected, with its one-line reason
and one "load" error verdict, and the run exits with status 2 — serially and under xdist (whose
controller checks before it starts any worker). Next to implementations that load, it is left
out of the run and still reported once. Also the fair share of the property budget."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = "tests/plugins"
COMMON = ["-q", "-p", "no:cacheprovider", "-o", "addopts=", "--backcheck-no-step-curve"]


def _pytest(args, tmp_path, timeout=300):
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k != "BACKCHECK_IMPL"}
    proc = subprocess.run([sys.executable, "-m", "pytest", *args, *COMMON, f"--backcheck-json={out}"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
    verdicts = json.loads(out.read_text())["verdicts"] if out.exists() else None
    return proc, verdicts


@pytest.mark.parametrize("source, problem, xdist", [
    (f"{PLUGINS}/bad_import.py:IMPL", "ModuleNotFoundError: No module named 'backcheck_no_such_dependency'", False),
    (f"{PLUGINS}/bad_protocol.py:NoGradients", "does not satisfy the Implementation protocol: no gradients() method",
     False),
    (f"{PLUGINS}/bad_import.py:IMPL", "ModuleNotFoundError: No module named 'backcheck_no_such_dependency'", True),
])
def test_a_load_error_is_reported_once_and_exits_2(tmp_path, source, problem, xdist):
    args = ["properties", f"--impl={source}"] + (["-n", "1"] if xdist else [])
    proc, verdicts = _pytest(args, tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text[-3000:]
    assert text.count(problem) == 1, text[-3000:]
    assert "Traceback" not in text and not re.search(r"\d+ (passed|failed|error)", text)   # no test ran
    if xdist:
        assert "[gw0]" not in text and "worker" not in text.replace("Benchmarks", "")   # none was started
    assert len(verdicts) == 1
    v = verdicts[0]
    assert (v["check"], v["status"], v["implementation"]) == ("load", "error", source)
    assert problem in v["message"] and "\n" not in v["message"]


def test_next_to_implementations_that_load_it_is_left_out_and_reported_once(tmp_path):
    proc, verdicts = _pytest([f"{PLUGINS}/tiny_suite.py", "--impl=builtin", f"--impl={PLUGINS}/bad_import.py:IMPL"],
                             tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text[-3000:]   # the run is incomplete: one implementation was never checked
    assert text.count("No module named 'backcheck_no_such_dependency'") == 1, text[-3000:]
    assert "bad_import.py:IMPL]" not in text    # none of its tests ran (or failed, one by one)
    loads = [v for v in verdicts if v["check"] == "load"]
    assert len(loads) == 1 and loads[0]["status"] == "error"
    assert {v["implementation"] for v in verdicts if v["status"] == "passed"} == {"numpy-builtin"}


def test_every_declared_loss_gets_a_fair_share_of_the_budget():
    """One loss declared: as many examples on it as the built-in gets over all seven."""
    from hypothesis import settings
    from implementations.numpy_mlp import builtin
    from implementations.registry import resolve
    from properties import test_properties as tp
    one = resolve(f"{PLUGINS}/one_loss.py:IMPL")
    per_property = tp.examples_per_property()
    assert per_property == max(10, settings().max_examples // 4) * 7
    assert tp.examples_per_loss(one.capabilities) == per_property
    assert tp.examples_per_loss(builtin.capabilities) * 7 == per_property
    assert all(d >= 1 for d in tp.DRAWS.values()) and max(tp.DRAWS.values()) <= 8


def test_default_parallelism_fits_the_machine():
    from backcheck.plugin import default_workers
    assert default_workers(cpus=2, load=0.2) == 2      # both cores idle: two workers
    assert default_workers(cpus=2, load=1.0) == 0      # one busy already: serial
    assert default_workers(cpus=1, load=0.0) == 0
    assert default_workers(cpus=16, load=3.0) == 4     # capped
    assert default_workers() in (0, 2, 3, 4)


def test_busy_cores_measures_now_not_the_last_minute():
    """A core kept busy while it measures counts as about one busy core."""
    import threading
    from backcheck.plugin import busy_cores
    idle = busy_cores()
    assert 0.0 <= idle <= (os.cpu_count() or 1) + 0.01
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass
    t = threading.Thread(target=spin)
    t.start()
    try:
        busy = busy_cores(0.3)
    finally:
        stop.set()
        t.join()
    assert busy >= 0.8 and busy >= idle - 0.2, (idle, busy)


def test_backcheck_check_runs_on_the_workers_that_fit_unless_told(monkeypatch, tmp_path):
    """`backcheck check` defaults to -n auto (default_workers); -n 0 stays serial."""
    import pytest as _pytest
    import backcheck.plugin
    from backcheck import cli
    seen = []
    monkeypatch.setattr(_pytest, "main", lambda argv: seen.append(argv) or 0)
    monkeypatch.setattr(backcheck.plugin, "default_workers", lambda: 2)
    assert cli.build_parser().parse_args(["check"]).workers == "auto"
    for extra, expect in (([], ["-n", "2"]), (["-n", "0"], None), (["-n", "3"], ["-n", "3"])):
        cli.main(["check", "--out", str(tmp_path), *extra])
        argv = seen.pop()
        assert (argv[argv.index("-n"):argv.index("-n") + 2] if "-n" in argv else None) == expect, argv


def test_tests_that_need_no_reference_program_run_first(tmp_path):
    """The perceptron's exact-arithmetic tests come first in the suite's order (a cold run's
    first results while the programs compile); every other test keeps its order."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "properties", "--collect-only", *COMMON], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    files = [i.split("::")[0] for i in ids]
    k = files.count("properties/test_perceptron.py")
    assert k > 0 and set(files[:k]) == {"properties/test_perceptron.py"}, (files[:k + 1], proc.stdout[-2000:], proc.stderr[-2000:])
    assert "backcheck: 0 tests" not in proc.stdout, "a collect-only run prints no progress summary"
    rest = [f for f in files if f != "properties/test_perceptron.py"]
    assert rest == sorted(rest, key=lambda f: sorted(set(rest)).index(f)), "the others keep their file order"


def test_programs_start_compiling_at_collection_when_the_first_tests_need_none(monkeypatch):
    """With no-program tests first, the reference programs are started at once (nothing would
    be compiling while those run otherwise); a run that starts with a program-using test starts
    them on first need, and a run of no-program tests alone never starts them."""
    import types
    import backcheck.plugin as plugin
    from reference import jax_ref, programs
    started, deferred = [], []
    monkeypatch.setattr(jax_ref, "prepare", lambda *a, **k: started.append(a) or 6)
    monkeypatch.setattr(programs, "when_needed", deferred.append)
    config = types.SimpleNamespace(_backcheck_progress=None, add_cleanup=lambda f: None)
    plugin._prepare_programs(config, now=True)
    assert len(started) == 1 and deferred == []
    plugin._prepare_programs(config, now=False)
    assert len(started) == 1 and len(deferred) == 1
    deferred[0]()
    assert len(started) == 2


PROBE = '''import sys
def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):   # the xdist controller, as its workers start
        open(__file__ + ".seen", "w").write(str("hypothesis" in sys.modules))
'''


def test_an_xdist_run_writes_its_workers_profile_and_its_workers_end_cleanly(tmp_path):
    """With -n 2 and outputs, the controller runs no test, so it imports no Hypothesis before
    its workers start (0.5 s of every run); the results still carry the profile the workers ran
    under (each sends it). The workers end as soon as their results are sent (plugin._exit_now):
    the run completes, every verdict in, no worker reported down."""
    (tmp_path / "probe_plugin.py").write_text(PROBE)
    args = ["properties/test_fixed.py", "-n", "2", "-p", "probe_plugin", "-k", "XOR or relu"]
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k != "BACKCHECK_IMPL"}
    env.update(PYTHONPATH=str(tmp_path), BACKCHECK_PROFILE="ci")
    proc = subprocess.run([sys.executable, "-m", "pytest", *args, *COMMON, f"--backcheck-json={out}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "node down" not in proc.stdout + proc.stderr and "Not properly terminated" not in proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert doc["meta"]["hypothesis_profile"] == "ci" and doc["meta"]["seed"] == "derandomized"
    assert doc["verdicts"] and all(v["status"] in ("passed", "not_checkable") for v in doc["verdicts"])
    assert (tmp_path / "probe_plugin.py.seen").read_text() == "False"
