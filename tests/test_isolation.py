"""Bad plug-ins (tests/plugins/bad_*.py): each gets a one-line error naming the implementation,
the call and the problem, recorded as an error (not a gradient failure), and the run goes on.

Every case runs in-process (Validated) and isolated (a worker process), except those that
need a process boundary to survive at all (hang, os._exit, segfault), which run isolated only.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from implementations import errors as E
from implementations import isolation
from implementations.errors import LoadError, PluginError
from implementations.numpy_mlp import builtin
from implementations.registry import load
from implementations.validate import DETERMINISM_EVERY
from reference.spec import init_params, mlp, random_batch

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = "tests/plugins"
TRIGGER_N = 13  # tests/plugins/bad_common.py: hang / exit / segfault only on batches of 13
TIMEOUT = 1.0


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the plug-in sources below are relative paths, as users type them


def _cases(sizes=(5, TRIGGER_N, 6)):
    spec = mlp(3, [4, 2], ["tanh", "identity"], l2=0.1)  # W1 is (4, 3): a transposition shows
    rng = np.random.default_rng(0)
    params = init_params(spec, rng)
    return [(spec, params, *random_batch(spec, rng, n)) for n in sizes]


def _assert_one_line(err: PluginError, implementation: str, call: str, problem: str, kind: str):
    text = str(err)
    assert "\n" not in text
    assert text.startswith(f"implementation {implementation!r} {call}(): "), text
    assert re.search(problem, text), text
    assert err.kind == kind
    v = err.verdict(check="vs_jax")
    assert (v.status, v.implementation, v.message, v.extra["kind"]) == ("error", implementation, text, kind)


def _assert_good(out, case):
    assert not isinstance(out, PluginError), out
    cost, grads = out
    ref_cost, ref_grads = builtin.gradients(*case)
    assert cost == ref_cost
    for (gW, gb), (rW, rb) in zip(grads, ref_grads):
        np.testing.assert_array_equal(gW, rW)
        np.testing.assert_array_equal(gb, rb)


# source, (implementation name or None for load errors), problem regex, kind
LOAD_ERRORS = [
    ("bad_import.py:IMPL", r"importing '.*bad_import\.py' failed: ModuleNotFoundError: No module named "
                           r"'backcheck_no_such_dependency' \(at bad_import\.py:2\)"),
    ("bad_protocol.py:NOPE", r"has no attribute 'NOPE'"),
    ("bad_protocol.py:NoGradients", r"does not satisfy the Implementation protocol: no gradients\(\) method"),
    ("bad_protocol.py:CapabilitiesAsDict", r"capabilities must be an implementations\.protocol\.Capabilities, got dict"),
    ("bad_protocol.py:DeclaresIntermediatesWithoutMethod",
     r"no intermediates\(\) method \(capabilities declare intermediates=True\)"),
    ("bad_protocol.py:NoName", r"no 'name' attribute"),
    ("no_such_file.py:IMPL", r"no such file"),
]

BAD_RESULTS = [  # every call fails the same way
    ("bad_raises.py:IMPL", "bad-raises", r"raised ZeroDivisionError: division by zero \(at bad_raises\.py:5\)", E.RAISED),
    ("bad_values.py:NAN", "bad-nan", r"returned NaN in layer 2 W\[0,1\]$", E.INVALID),
    ("bad_values.py:INF", "bad-inf", r"returned inf in layer 1 b\[3\]$", E.INVALID),
    ("bad_values.py:COST_NAN", "bad-cost-nan", r"returned NaN as the cost$", E.INVALID),
    ("bad_shapes.py:TRANSPOSED", "bad-transposed", r"layer 1 W has shape \(3, 4\), expected \(4, 3\)$", E.INVALID),
    ("bad_shapes.py:MISSING_LAYER", "bad-layers", r"returned grads for 1 layer, the network has 2$", E.INVALID),
    ("bad_shapes.py:LISTS", "bad-lists", r"layer 1 W is a list, expected a numpy ndarray$", E.INVALID),
    ("bad_shapes.py:FLOAT32", "bad-float32", r"layer 1 W has dtype float32, expected float64", E.INVALID),
    ("bad_shapes.py:COST_VECTOR", "bad-cost-vector", r"cost is a numpy\.ndarray of shape \(\d+,\), expected a real scalar",
     E.INVALID),
    ("bad_huge.py:IMPL", "bad-huge", r"returned a huge object \(over 40\.\d MB; a result for this network is about "
                                     r"\d+ B\)", E.TOO_LARGE),
    ("bad_mutates.py:IMPL", "bad-mutates", r"mutated its input params layer 1 W ", E.MUTATED),
]

TRIGGERED = [  # only the middle case (a batch of TRIGGER_N) fails; the worker is replaced
    ("bad_exit.py:IMPL", "bad-exit", r"crashed: the worker process died \(exit code 3\)$", E.CRASHED),
    ("bad_segfault.py:IMPL", "bad-segfault", r"crashed: the worker process died \(killed by signal SIGSEGV\)$", E.CRASHED),
    ("bad_hang.py:IMPL", "bad-hang", rf"timed out: no result within {TIMEOUT:g} s", E.TIMEOUT),
    ("bad_hang_gil.py:IMPL", "bad-hang-gil", rf"timed out: no result within {TIMEOUT:g} s", E.TIMEOUT),
]

MODES = [pytest.param(False, id="in-process"), pytest.param(True, id="isolated")]


@pytest.mark.parametrize("isolate", MODES)
@pytest.mark.parametrize("source, problem", LOAD_ERRORS, ids=[s for s, _ in LOAD_ERRORS])
def test_load_errors(source, problem, isolate):
    source = f"{PLUGINS}/{source}"
    with pytest.raises(LoadError) as info:
        load(source, isolate=isolate, timeout=TIMEOUT)
    _assert_one_line(info.value, source, "load", problem, E.LOAD)
    assert info.value.verdict(check="load").status == "error"


@pytest.mark.parametrize("isolate", MODES)
@pytest.mark.parametrize("source, name, problem, kind", BAD_RESULTS, ids=[c[0] for c in BAD_RESULTS])
def test_bad_results(source, name, problem, kind, isolate):
    impl = load(f"{PLUGINS}/{source}", isolate=isolate, timeout=TIMEOUT)
    try:
        out = impl.gradients_many(_cases())
        assert len(out) == 3 and all(isinstance(o, PluginError) for o in out)
        for err in out:
            _assert_one_line(err, name, "gradients", problem, kind)
        with pytest.raises(PluginError) as info:  # the single call raises the same error
            impl.gradients(*_cases([5])[0])
        _assert_one_line(info.value, name, "gradients", problem, kind)
    finally:
        getattr(impl, "close", lambda: None)()


@pytest.mark.parametrize("isolate", MODES)
def test_nondeterministic(isolate):
    """Caught on the first call (and then on every DETERMINISM_EVERY-th), not on the others."""
    impl = load(f"{PLUGINS}/bad_nondeterministic.py:IMPL", isolate=isolate)
    try:
        out = impl.gradients_many(_cases([5] * (DETERMINISM_EVERY + 1)))
        for i in (0, DETERMINISM_EVERY):
            _assert_one_line(out[i], "bad-nondeterministic", "gradients",
                             r"non-deterministic implementation: two identical calls returned different layer 1 W "
                             r"\(max difference \d(\.\d+)?e-(09|10|11), over the reassociation bound \d(\.\d+)?e-1\d\)$",
                             E.NONDETERMINISTIC)
        assert not any(isinstance(o, PluginError) for o in out[1:DETERMINISM_EVERY])
    finally:
        getattr(impl, "close", lambda: None)()


@pytest.mark.parametrize("source, name, problem, kind", TRIGGERED, ids=[c[0] for c in TRIGGERED])
def test_process_killers_are_contained(source, name, problem, kind):
    """Hang / os._exit / segfault on one case of a batch: that case is an error, and the cases
    before and after it are checked normally (after it, by a new worker). Replies travel in
    chunks: the ones the worker held when it died are recomputed, never lost or misassigned."""
    impl = load(f"{PLUGINS}/{source}", isolate=True, timeout=TIMEOUT)
    try:
        cases = _cases((5, 6, 7, TRIGGER_N, 8))
        out = impl.gradients_many(cases)
        for i in (0, 1, 2, 4):
            _assert_good(out[i], cases[i])
        _assert_one_line(out[3], name, "gradients", problem, kind)
        if source == "bad_hang.py:IMPL":  # the watchdog said which case hung: no rerun needed
            assert impl.restarts == 1
        _assert_good(impl.gradients(*cases[0]), cases[0])  # and the proxy stays usable
    finally:
        impl.close()


GIVE_UPS = [  # a plug-in failing every call: what the calls not made say, the first cause kept
    ("bad_exit.py:IMPL", "bad-exit", "crashed", "exited with code 3", E.CRASHED),
    ("bad_segfault.py:IMPL", "bad-segfault", "crashed", "killed by signal SIGSEGV", E.CRASHED),
    ("bad_hang.py:IMPL", "bad-hang", f"timed out after {TIMEOUT:g} s", f"timed out after {TIMEOUT:g} s", E.TIMEOUT),
]


@pytest.mark.parametrize("source, name, what, first, kind", GIVE_UPS, ids=[c[0] for c in GIVE_UPS])
def test_gives_up_after_repeated_crashes(source, name, what, first, kind):
    """A plug-in that crashes or hangs on every call costs GIVE_UP_AFTER restarts, not one per
    case, and the calls it then skips say how the first of the failures in a row ended."""
    impl = load(f"{PLUGINS}/{source}", isolate=True, timeout=TIMEOUT)
    try:
        out = impl.gradients_many(_cases([TRIGGER_N] * (isolation.GIVE_UP_AFTER + 2)))
        assert [o.kind for o in out] == [kind] * len(out)
        assert isolation.GIVE_UP_AFTER - 1 <= impl.restarts <= isolation.GIVE_UP_AFTER
        for skipped in out[isolation.GIVE_UP_AFTER:]:
            _assert_one_line(skipped, name, "gradients",
                             rf"not called: the implementation {re.escape(what)} on {isolation.GIVE_UP_AFTER} calls "
                             rf"in a row \(first: {re.escape(first)}\)$", kind)
        assert "not called" not in str(out[0])  # the failures themselves keep their own message
    finally:
        impl.close()


def test_give_up_message_names_a_mixed_streak():
    """Crashes and timeouts in one streak: both named, the first one's cause kept."""
    impl = load(f"{PLUGINS}/bad_exit.py:IMPL", isolate=True, timeout=TIMEOUT)
    try:
        impl._failed("gradients", E.TIMEOUT, "timed out", "timed out after 1 s")
        out = impl.gradients_many(_cases([TRIGGER_N] * isolation.GIVE_UP_AFTER))
        _assert_one_line(out[-1], "bad-exit", "gradients", rf"not called: the implementation crashed or hung on "
                         rf"{isolation.GIVE_UP_AFTER} calls in a row \(first: timed out after 1 s\)$", E.CRASHED)
    finally:
        impl.close()


def test_reply_size_cap(monkeypatch):
    """The worker refuses to send a reply over MAX_MESSAGE_BYTES, whatever validation let through."""
    monkeypatch.setattr(isolation, "MAX_MESSAGE_BYTES", 200)
    impl = load("builtin", isolate=True)
    try:
        (out,) = impl.gradients_many(_cases([5]))
        _assert_one_line(out, "numpy-builtin", "gradients",
                         r"returned a huge object \(\d+ B pickled, over the 200 B limit\)", E.TOO_LARGE)
    finally:
        impl.close()


def test_isolated_matches_in_process():
    """The proxy is transparent: same results, same optional methods as declared."""
    iso, inproc = load("builtin", isolate=True), load("builtin")
    try:
        assert (iso.name, iso.capabilities) == (inproc.name, inproc.capabilities)
        cases = _cases((5, 6))
        for out, case in zip(iso.gradients_many(cases), cases):
            _assert_good(out, case)
        a, b = iso.intermediates(*cases[0]), builtin.intermediates(*cases[0])
        for field in ("pre_activations", "activations", "deltas"):
            for x, y in zip(getattr(a, field), getattr(b, field)):
                np.testing.assert_array_equal(x, y)
        X = np.array([[1.0, 2.0], [-1.0, -1.5], [2.0, 0.5], [-2.0, -0.5]])
        y = np.array([1.0, -1.0, 1.0, -1.0])
        p, q = iso.perceptron(X, y, 10), builtin.perceptron(X, y, 10)
        assert (p.updates, p.converged, p.mistakes) == (q.updates, q.converged, q.mistakes)
        np.testing.assert_array_equal(p.w, q.w)
        cost, grads = iso.gradients(*cases[0])
        grads[0][0][0, 0] = 1.0  # the harness gets writable arrays it owns
    finally:
        iso.close()


@pytest.mark.parametrize("isolate", MODES)
def test_submit_gradients(isolate):
    """One call in flight while the harness does other work; other calls collect it first, and
    a crash in it is its own error, not the next call's."""
    impl = load(f"{PLUGINS}/bad_exit.py:IMPL", isolate=isolate)
    try:
        good, bad = _cases((5, TRIGGER_N if isolate else 6))
        first = impl.submit_gradients(*good)
        out = impl.gradients_many([good])  # collects `first` before sending
        assert first.done()
        _assert_good(first.result(), good)
        _assert_good(out[0], good)
        if isolate:
            crashing = impl.submit_gradients(*bad)
            with pytest.raises(PluginError) as info:
                crashing.result()
            _assert_one_line(info.value, "bad-exit", "gradients", r"crashed: the worker process died \(exit code 3\)$",
                             E.CRASHED)
            _assert_good(impl.submit_gradients(*good).result(), good)
    finally:
        getattr(impl, "close", lambda: None)()


def test_undeclared_methods_are_absent():
    impl = load(f"{PLUGINS}/bad_values.py:NAN", isolate=True)
    try:
        assert not hasattr(impl, "intermediates") and not hasattr(impl, "perceptron")
    finally:
        impl.close()


def test_run_with_bad_implementations_completes(tmp_path):
    """One pytest run over the built-in and several bad plug-ins: every test runs, each bad
    plug-in's error is recorded as an error verdict with its one line, the built-in passes."""
    impls = ["builtin", f"{PLUGINS}/bad_values.py:NAN", f"{PLUGINS}/bad_segfault.py:IMPL",
             f"{PLUGINS}/bad_hang.py:IMPL", f"{PLUGINS}/bad_import.py:IMPL"]
    out = tmp_path / "results.json"
    argv = [sys.executable, "-m", "pytest", f"{PLUGINS}/tiny_suite.py", "-q", "-p", "no:cacheprovider",
            "--impl-timeout", str(TIMEOUT), f"--backcheck-json={out}",
            "--backcheck-no-step-curve"]
    argv += [f"--impl={s}" for s in impls]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONFAULTHANDLER": ""})
    tail = proc.stdout.strip().splitlines()[-1]
    # 2 tests x 5 implementations: bad-nan fails both, segfault and hang fail only the batched
    # test (middle case), the built-in passes both; the import error is reported once, before the
    # tests (its tests left out), and makes the run exit 2
    assert re.search(r"4 failed, 4 passed", tail) and "error" not in tail, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 2
    verdicts = json.loads(out.read_text())["verdicts"]
    errors = {(v["implementation"], v["message"]) for v in verdicts if v["status"] == "error"}
    assert ("bad-nan", "implementation 'bad-nan' gradients(): returned NaN in layer 2 W[0,1]") in errors
    assert ("bad-segfault", "implementation 'bad-segfault' gradients(): crashed: the worker process died "
                            "(killed by signal SIGSEGV)") in errors
    assert any(i == "bad-hang" and "timed out" in m for i, m in errors)
    assert any(i.endswith("bad_import.py:IMPL") and "ModuleNotFoundError" in m for i, m in errors)
    assert all("\n" not in m for _, m in errors)
    passed = [v for v in verdicts if v["status"] == "passed"]
    assert {v["implementation"] for v in passed} == {"numpy-builtin", "bad-segfault", "bad-hang"}
    assert sum(v["implementation"] == "numpy-builtin" for v in passed) == 4  # 3 batched + 1 single
    assert not [v for v in verdicts if v["status"] == "failed"]  # errors are never gradient failures
    # the one-line messages, not tracebacks, are what pytest shows
    assert "implementation 'bad-nan' gradients(): returned NaN in layer 2 W[0,1]" in proc.stdout
    assert "Traceback" not in proc.stdout


def test_a_worker_grown_past_the_limit_is_replaced_between_calls(monkeypatch):
    """A plug-in that keeps 40 MB per call (as jax.jit keeps a program per network) gets a fresh
    worker once its old one has grown past RECYCLE_BYTES: every call answered right, no error,
    no crash counted."""
    impl = load(f"{PLUGINS}/grows.py:IMPL", isolate=True)
    try:
        cases = _cases((5, 6))
        _assert_good(impl.gradients(*cases[0]), cases[0])
        first = impl._handle[0].pid
        base = isolation._resident_bytes(first)
        assert base is not None and base > 40 << 20
        monkeypatch.setattr(isolation, "RECYCLE_BYTES", base + (100 << 20))
        monkeypatch.setattr(isolation, "RSS_EVERY", 0.0)
        for k in range(6):
            case = cases[k % 2]
            _assert_good(impl.gradients(*case), case)
        assert impl.recycled >= 1 and impl.restarts == impl.recycled and impl._handle[0].pid != first
        assert not impl._streak and impl._gave_up is None
    finally:
        impl.close()
