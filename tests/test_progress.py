"""Progress a person can read (backcheck/progress.py, shown by backcheck/plugin.py): one
updating line in a terminal, plain lines in a log, nothing for runs that are not the property
suite, and under xdist the workers' program events reach the controller's display."""
from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from backcheck.progress import EventsFile, Progress, impl_of, label
from reference.jax_ref import Bucket

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _display(line_mode, impls=("builtin",)):
    r, w = os.pipe()
    clock = Clock()
    p = Progress(w, line_mode, impls=impls, width=200, clock=clock)
    return p, clock, lambda: _drain(r, w, p)


def _drain(r, w, p):
    os.close(w)
    with os.fdopen(r, "rb") as f:
        return f.read().decode()


def test_the_terminal_line_says_what_is_being_done_and_is_rewritten_in_place():
    p, clock, output = _display(True)
    p.program("compiling", "gradient d8·w16·n32")   # before activate(): nothing is shown
    p.activate()
    p.program("planned", "6")
    clock.t = 3
    p.collected(40)
    assert p.text() == "backcheck 3 s · reference programs 0/6, compiling gradient d8·w16·n32 (3 s) · test 0/40 · 0 failed"
    p.program("ready", "gradient d8·w16·n32")
    p.test_done("properties/test_properties.py::test_x[builtin-mse]", failed=False)
    p.test_done("properties/test_properties.py::test_y[builtin-l1]", failed=True)
    assert p.text() == "backcheck 3 s · reference programs 1/6 · builtin: test 2/40 · 1 failed"
    p.finish()
    out = output()
    assert out.startswith("\r\x1b[2K") and "\n" not in out[:-1]   # one line, redrawn, closed at the end
    assert out.endswith("\r\x1b[2Kbackcheck: 2 tests, 1 failed, 3.0 s (reference programs: 1 compiled, 0 from the cache)\n")


def test_a_log_gets_plain_lines_at_milestones_only():
    p, clock, output = _display(False)
    p.activate()
    p.program("planned", "2")
    p.program("compiling", "gradient d8·w16·n32")
    clock.t = 4
    p.program("ready", "gradient d8·w16·n32")
    p.program("ready", "perturbed d8·w16·n32")
    p.collected(100)
    for i in range(25):
        p.test_done(f"t.py::test_{i}[builtin]", failed=i == 3)
    p.finish()
    lines = output().splitlines()
    assert all(line.startswith("backcheck: ") for line in lines)
    assert lines[0].startswith("backcheck: compiling reference program gradient d8·w16·n32 (0 of 2 ready")
    assert lines[1] == "backcheck: reference programs ready: 2 (1 compiled, 1 from the cache) after 4 s"
    assert "backcheck: first failure: t.py::test_3[builtin]" in lines
    tests = [line for line in lines if "builtin: test " in line]   # the first, then every tenth, not each
    assert [t.split("test ")[1].split(" ")[0] for t in tests] == ["1/100", "10/100", "20/100"]
    assert lines[-1] == "backcheck: 25 tests, 1 failed, 4.0 s (reference programs: 1 compiled, 1 from the cache)"
    assert len(lines) == 7


def test_which_implementation_a_test_ran_on():
    impls = ["builtin", "entry-mlp", "tests/plugins/one_loss.py:IMPL"]
    assert impl_of("p/test_properties.py::test_x[entry-mlp-mse]", impls) == "entry-mlp"
    assert impl_of("p/test_fixed.py::test_fixed_case[tests/plugins/one_loss.py:IMPL-relu]", impls) == impls[2]
    assert impl_of("p/test_fixed.py::test_svm[builtin]", impls) == "builtin"
    assert impl_of("p/test_properties.py::test_references_agree", impls) == ""


def test_program_labels_and_the_workers_events_file(tmp_path):
    assert label(("perturbed", Bucket(8, 16, 32, 4))) == "perturbed d8·w16·n32·k4"
    assert label(("directional", Bucket(8, 16, 32, 1))) == "directional d8·w16·n32"
    writer, reader = EventsFile(str(tmp_path / "e")), EventsFile(str(tmp_path / "e"))
    writer.write("planned", "6")
    writer.write("compiling", "gradient d8·w16·n32")
    with open(tmp_path / "e", "a") as f:
        f.write("ready\tgrad")   # a line still being written is left for the next read
    assert reader.read_new() == [("planned", "6"), ("compiling", "gradient d8·w16·n32")]
    with open(tmp_path / "e", "a") as f:
        f.write("ient d8·w16·n32\n")
    assert reader.read_new() == [("ready", "gradient d8·w16·n32")]
    assert reader.read_new() == []


SLICE = ["properties/test_perceptron.py", "-k", "tight or xor", "-p", "no:cacheprovider", "-o", "addopts="]


def test_in_a_terminal_the_line_replaces_pytests_dots():
    """The perceptron slice needs no reference program: none is compiled, and the line
    counts its tests in place of pytest's dots."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *SLICE, "-q"], cwd=ROOT, stdout=slave, stderr=slave,
                            env={k: v for k, v in os.environ.items() if k not in ("CI", "BACKCHECK_IMPL")})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(300)
    out = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, out[-2000:]
    assert "\r\x1b[2Kbackcheck " in out and "builtin: test 2/2" in out
    assert "backcheck: 2 tests, 0 failed" in out and "reference programs" not in out
    assert ".." not in out.split("backcheck: 2 tests")[0]   # no dots under the line


def test_in_a_log_plain_lines_and_nothing_for_other_test_runs():
    env = {**{k: v for k, v in os.environ.items() if k != "BACKCHECK_IMPL"}, "CI": "true"}
    proc = subprocess.run([sys.executable, "-m", "pytest", *SLICE, "-q"], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "\x1b[2K" not in proc.stdout and "backcheck: 2 tests, 0 failed" in proc.stdout
    other = subprocess.run([sys.executable, "-m", "pytest", "tests/plugins/tiny_suite.py", "-q", "-p", "no:cacheprovider",
                            "-o", "addopts=", "--backcheck-no-step-curve"], cwd=ROOT, capture_output=True, text=True,
                           env=env, timeout=300)
    assert other.returncode == 0 and "backcheck:" not in other.stdout, other.stdout[-2000:]


def test_a_program_two_workers_compiled_counts_once():
    """xdist workers' events arrive alike: a program compiled in two of them (a run's "one more"
    program) is one compiled program, never a negative count of loaded ones."""
    p, clock, output = _display(False)
    p.activate()
    p.program("planned", "1")
    for _ in range(2):
        p.program("compiling", "gradient d8·w16·n32")
        p.program("ready", "gradient d8·w16·n32")
    p.finish()
    assert output().splitlines()[-1].endswith("(reference programs: 1 compiled, 0 from the cache)")
