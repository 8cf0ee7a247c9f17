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
