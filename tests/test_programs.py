"""The compiled reference programs (reference.programs, reference.jax_ref): keyed by what they
are built from, so an unrelated edit keeps them; a cache that prunes itself; programs prepared
ahead and taken over or waited for, never compiled twice (in one process or across processes);
the property suite's whole run on a handful of programs; and the coarse buckets, the
run-time depth and the vectorized gradient change no result beyond the order of a sum."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from reference import jax_ref, programs
from reference.spec import Layer, NetworkSpec, init_params, random_batch

ROOT = Path(__file__).resolve().parents[1]

TRACED = '''
import jax.numpy as jnp
SCALE = {scale}

def helper(x):
    # {comment}
    return jnp.tanh(x) * SCALE

def entry(x):
    """{doc}"""
    return helper(x) + 1.0

def unreached():
    return {unreached}
'''


def _module(folder: Path, name: str, **fields):
    path = folder / f"{name}.py"
    path.write_text(TRACED.format(**{"scale": 2.0, "comment": "why", "doc": "entry", "unreached": 0, **fields}))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_the_key_is_the_traced_code_not_the_file(tmp_path, monkeypatch):
    """Comments, docstrings, line numbers and code the program never reaches leave the key
    alone; a change to a function or constant it reaches does not."""
    monkeypatch.setattr(programs, "_HERE", tmp_path)
    programs._code_digest_of.cache_clear()
    base = programs._code_digest(_module(tmp_path, "m_base").entry)
    same = [_module(tmp_path, "m_comment", comment="another reason").entry,
            _module(tmp_path, "m_doc", doc="said otherwise").entry,
            _module(tmp_path, "m_unreached", unreached=1).entry]
    changed = [_module(tmp_path, "m_scale", scale=3.0).entry]
    shifted = tmp_path / "m_shift.py"
    shifted.write_text("\n\n# a new first line\n" + (tmp_path / "m_base.py").read_text())
    spec = importlib.util.spec_from_file_location("m_shift", shifted)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    same.append(mod.entry)
    assert [programs._code_digest(f) for f in same] == [base] * len(same)
    assert programs._code_digest(changed[0]) != base
    programs._code_digest_of.cache_clear()


def test_the_reference_entry_points_reach_all_their_traced_code():
    """What the gradient program's key covers: the forward pass, the activation and loss
    tables, the kink helpers and the activations module (by its source)."""
    import hashlib
    reached, original = set(), hashlib.sha256
    real = programs._code_digest_of.__wrapped__

    class Spy:
        def __init__(self):
            self.h, self.prev = original(), b""

        def update(self, b):
            if self.prev in (b"global\0", b"module\0"):
                reached.add(b.decode().rstrip("\0"))
            self.prev = b
            self.h.update(b)

        def hexdigest(self):
            return self.h.hexdigest()
    hashlib.sha256 = Spy
    try:
        real(jax_ref._value_and_grad_many)
    finally:
        hashlib.sha256 = original
    assert {"_value_and_grad", "_forward", "_act_branches", "_LOSS_FNS", "_LOSS_KINK_ARG", "_select_piece",
            "_hinge_at", "_KINK_ACT_BRANCH", "reference.activations"} <= reached


def test_keys_are_stable_across_processes():
    code = ("from reference import jax_ref, programs\n"
            "print([programs._code_digest(f) for f in (jax_ref._value_and_grad_many, jax_ref._perturbed_costs,"
            " jax_ref._direction_costs_many)])")
    outs = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1


def _touch(path: Path, days_ago: float, size: int = 10, now: float = 1e9) -> Path:
    path.write_bytes(b"x" * size)
    os.utime(path, (now - days_ago * 86400, now - days_ago * 86400))
    return path


def test_the_cache_prunes_what_it_no_longer_needs(tmp_path, monkeypatch):
    now = 1e9
    f = lambda name, slot, build: f"{name}-{slot * 16}-{build * 16}.bin"  # noqa: E731
    keep = {
        "current, used today": _touch(tmp_path / f("gradient", "a", "1"), 0.1),
        "superseded, used this morning": _touch(tmp_path / f("gradient", "a", "0"), 0.2),
        "current, used yesterday": _touch(tmp_path / f("gradient", "b", "1"), 0.5),
        "alone in its slot, idle 10 days": _touch(tmp_path / f("gradient", "c", "1"), 10),
        "a write in progress": _touch(tmp_path / "x.tmp", 0.01),
    }
    gone = {
        "superseded, idle 2 days": _touch(tmp_path / f("gradient", "b", "0"), 2),
        "idle past MAX_AGE_DAYS": _touch(tmp_path / f("perturbed", "d", "2"), programs.MAX_AGE_DAYS + 1),
        "an old format, idle 2 days": _touch(tmp_path / "gradient-0123456789abcdef0123456789abcdef.bin", 2),
        "a crashed writer's leftovers": _touch(tmp_path / "y.tmp", 1),
        "a stale lock": _touch(tmp_path / f("gradient", "b", "0").replace(".bin", ".lock"), 2, 0),
    }
    assert set(programs.prune(tmp_path, now=now)) == set(gone.values())
    assert all(p.exists() for p in keep.values())
    # past MAX_BYTES the least recently used go first, down to 3/4 of it
    monkeypatch.setattr(programs, "MAX_BYTES", 100)
    big = [_touch(tmp_path / f("directional", c, "3"), days, 40) for c, days in (("e", 3), ("f", 2), ("9", 0.05))]
    removed = programs.prune(tmp_path, now=now)
    assert sum(p.stat().st_size for p in tmp_path.glob("*.bin")) <= 75
    assert keep["alone in its slot, idle 10 days"] in removed and big[0] in removed
    assert big[2].exists() and keep["current, used today"].exists()   # the most recently used stay


def test_prepared_programs_are_taken_over_or_waited_for_never_compiled_twice(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKCHECK_JAX_CACHE", str(tmp_path))
    import jax.numpy as jnp
    events = []

    def listener(event, key):
        events.append((event, key))
    programs.listen(listener)
    try:
        def f(x):
            return jnp.sin(x) * 3.0
        entries = [(("t_prepare", n), f, (np.zeros(n),)) for n in (3, 4, 5)]
        before = dict(programs.stats)
        threads = programs.prepare(entries, threads=1)
        # asked for while queued or being made: the same program, made once
        got = [programs.compiled(k, fn, a) for k, fn, a in reversed(entries)]
        for t in threads:
            t.join()
        assert [programs.compiled(k, fn, a) for k, fn, a in reversed(entries)] == got
        programs.settle()
        made = {k: programs.stats[k] - before[k] for k in before}
        assert made == {"compiled": 3, "loaded": 0, "fast": 0}, made   # not asked to build fast first
        assert sorted(k[1] for e, k in events if e == "ready" and k[0] == "t_prepare") == [3, 4, 5]
        np.testing.assert_array_equal(got[0](np.ones(5)), np.sin(np.ones(5)) * 3.0)
    finally:
        programs.forget(listener)


def test_a_program_waited_for_is_built_fast_then_replaced_by_its_stored_optimized_build(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKCHECK_JAX_CACHE", str(tmp_path))
    import jax.numpy as jnp

    def f(x):
        return jnp.tanh(x) - x
    key, args = ("t_tiers", 6), (np.linspace(-2, 2, 6),)
    before = dict(programs.stats)
    fast = programs.compiled(key, f, args, fast=True)
    assert programs.stats["fast"] - before["fast"] == 1
    programs.settle()
    optimized = programs.compiled(key, f, args)
    assert optimized is not fast and programs.stats["compiled"] - before["compiled"] == 1
    np.testing.assert_allclose(fast(*args), optimized(*args), rtol=1e-15)
    stored = programs.path_of("t_tiers", f, args)
    assert stored.exists() and programs._load(stored) is not None   # the optimized build is the one kept


def test_a_program_another_process_is_compiling_is_waited_for_and_loaded(tmp_path):
    """Cold xdist workers: the second one to need a program waits on its lock file and loads
    the first one's copy."""
    code = textwrap.dedent("""
        import json, sys, time
        import numpy as np, jax.numpy as jnp
        from reference import programs
        def f(x):
            return jnp.cos(x) + 2.0
        if sys.argv[1] == "hold":   # take the lock as a compiling process would, then compile
            path = programs.path_of("t_lock", f, (np.zeros(7),))
            path.parent.mkdir(parents=True, exist_ok=True)
            with programs._file_lock(path.with_suffix(".lock")):
                print("locked", flush=True)
                time.sleep(2)
                programs._store(path, programs._compile(f, (np.zeros(7),)))
        else:
            programs.compiled(("t_lock",), f, (np.zeros(7),))
        print(json.dumps(programs.stats), flush=True)
    """)
    env = {**os.environ, "BACKCHECK_JAX_CACHE": str(tmp_path)}
    holder = subprocess.Popen([sys.executable, "-c", code, "hold"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    waiter = subprocess.run([sys.executable, "-c", code, "wait"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    held = json.loads(holder.stdout.readline())
    holder.wait(60)
    assert json.loads(waiter.stdout.strip().splitlines()[-1]) == {"loaded": 1, "compiled": 0, "fast": 0}, waiter.stderr
    assert held == {"loaded": 0, "compiled": 1, "fast": 0}


def test_the_property_suite_runs_on_twelve_programs():
    """Every network the suite draws falls in one of four buckets (tiny or not, maxout or not):
    one gradient, one perturbation and one direction program each."""
    from hypothesis import HealthCheck, given, settings, strategies as st
    from properties.strategies import cases, reference_buckets
    buckets = reference_buckets()
    assert len(buckets) == 4 and {(b.pieces, b.width) for b in buckets} == {(1, 4), (4, 4), (1, 16), (4, 16)}
    seen = set()

    @settings(max_examples=300, database=None, suppress_health_check=list(HealthCheck), deadline=None)
    @given(case=st.one_of(cases(dtypes=("float64", "float32")),   # and as many within the tiny bucket
                          cases(dtypes=("float64", "float32"), max_width=4, max_in=4, batch=st.integers(1, 8))))
    def drawn(case):
        seen.add(jax_ref.bucket_of(case.spec, case.X.shape[0]))
    drawn()
    assert seen <= set(buckets) and len(seen) == 4


def _case(spec, n, seed):
    rng = np.random.default_rng(seed)
    return init_params(spec, rng), *random_batch(spec, rng, n)


SPECS = [NetworkSpec(3, (Layer(5, "tanh"), Layer(2, "identity")), "mse", 0.1),
         NetworkSpec(4, (Layer(6, "maxout", pieces=3), Layer(5, "relu"), Layer(3, "softplus")), "softmax_ce"),
         NetworkSpec(2, (Layer(4, "elu", alpha=0.3), Layer(1, "identity")), "hinge")]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
def test_a_gradient_does_not_depend_on_its_slot_or_company(spec):
    """gradients_many: each network's result is the one it gets alone (so a reproducer
    rerunning one case finds the suite's numbers exactly)."""
    slots = jax_ref.grad_slots(jax_ref.bucket_of(spec, 7))
    packs = [jax_ref.pack(spec, *_case(spec, 7, s)) for s in range(slots + 2)]
    together = jax_ref.gradients_many(packs)
    for p, r in zip(packs, together):
        alone = jax_ref.gradients_packed(p)
        assert alone.cost == r.cost and alone.on_kink == r.on_kink
        np.testing.assert_array_equal(alone.flat, r.flat)
        for a, b in zip(alone.deltas, r.deltas):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [9, 2, 32])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
def test_perturbed_costs_do_not_depend_on_how_many_are_asked_together(spec, n):
    """Nor on which copy of the batch an evaluation carries a change in (jax_ref._Replicas: 9
    samples in a 32-row bucket are 3 copies, 2 in the tiny bucket's 8 rows 4, 32 one)."""
    p = jax_ref.pack(spec, *_case(spec, n, 3))
    assert jax_ref.replicas_of(p.bucket, n) == p.bucket.batch // n
    rng = np.random.default_rng(0)
    idx = rng.integers(0, p.theta.size, 300)
    values = p.theta[idx] + rng.choice([1e-3, -1e-6], 300)
    costs, crossed = jax_ref.perturbed_costs(p, idx, values)
    pieces = [jax_ref.perturbed_costs(p, idx[s:s + 7], values[s:s + 7]) for s in range(0, 300, 7)]
    np.testing.assert_array_equal(costs, np.concatenate([c for c, _ in pieces]))
    np.testing.assert_array_equal(crossed, np.concatenate([k for _, k in pieces]))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
def test_direction_costs_do_not_depend_on_how_many_points_are_asked_together(spec):
    p = jax_ref.pack(spec, *_case(spec, 6, 4))
    v = np.random.default_rng(1).standard_normal(p.theta.size)
    ts = np.linspace(-1e-3, 1e-3, 21)
    costs, crossed = jax_ref.direction_costs(p, v, ts)
    parts = [jax_ref.direction_costs(p, v, ts[s:s + 4]) for s in range(0, 21, 4)]
    np.testing.assert_array_equal(costs, np.concatenate([c for c, _ in parts]))
    np.testing.assert_array_equal(crossed, np.concatenate([k for _, k in parts]))


@pytest.mark.parametrize("spec", SPECS[1:2], ids=lambda s: s.describe())   # one bucket: two compiles
def test_a_deeper_bucket_gives_the_same_numbers(spec, monkeypatch):
    """Layers past the network's depth are skipped at run time: padding the depth further (16
    instead of 8) changes no cost, gradient, delta or perturbed cost."""
    params, X, Y = _case(spec, 5, 1)
    idx = np.arange(min(40, sum(W.size + b.size for W, b in params)))

    def run():
        p = jax_ref.pack(spec, params, X, Y)
        r = jax_ref.gradients_packed(p)
        return p.bucket.depth, r, jax_ref.perturbed_costs(p, idx, p.theta[idx] * (1 + 1e-4))[0]
    depth8, r8, c8 = run()
    real = jax_ref._bucket
    monkeypatch.setattr(jax_ref, "_bucket", lambda d, w, n, k: real(max(d, 9), w, n, k))
    jax_ref._layout.cache_clear()
    try:
        depth16, r16, c16 = run()
    finally:
        monkeypatch.undo()
        jax_ref._layout.cache_clear()
    assert (depth8, depth16) == (8, 16)
    assert r8.cost == r16.cost and r8.on_kink == r16.on_kink
    np.testing.assert_array_equal(r8.flat, r16.flat)
    for a, b in zip(r8.deltas, r16.deltas):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(c8, c16)


def test_prepare_waits_for_programs_at_exit():
    """A program being compiled when the process ends is finished, not cut off (a daemon
    thread inside XLA at interpreter shutdown aborts the process)."""
    code = ("import numpy as np, jax.numpy as jnp\n"
            "from reference import programs\n"
            "def f(x):\n    return jnp.exp(x) - 1.0\n"
            "programs.prepare([(('t_exit', n), f, (np.zeros(n),)) for n in range(2, 6)], threads=2)\n")
    t = time.time()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "BACKCHECK_JAX_CACHE": "off"})
    assert proc.returncode == 0 and "terminate" not in proc.stderr, proc.stderr[-2000:]
    assert time.time() - t < 120


TINY_SPECS = [NetworkSpec(3, (Layer(4, "relu"), Layer(2, "identity")), "mse", 0.1),
              NetworkSpec(2, (Layer(3, "maxout", pieces=2), Layer(4, "tanh"), Layer(1, "sigmoid")), "logistic")]


@pytest.mark.parametrize("spec", TINY_SPECS + SPECS[:1], ids=lambda s: s.describe())
def test_draws_moved_along_their_directions_together_get_each_its_own_costs(spec):
    """direction_costs_many (the directional property's draws, one call for all in a tiny
    bucket): each request's costs and crossings are the ones it gets alone, bit for bit, and
    do not depend on the company it is evaluated in."""
    n = 5
    packs = [jax_ref.pack(spec, *_case(spec, n, s)) for s in range(6)]
    rng = np.random.default_rng(2)
    requests = [(p, rng.standard_normal(p.theta.size), np.linspace(-1e-3, 1e-3, m))
                for p, m in zip(packs, (12, 21, 5, 12, 16, 3))]
    together = jax_ref.direction_costs_many(requests)
    assert len(together) == len(requests)
    for req, (c, k) in zip(requests, together):
        alone_c, alone_k = jax_ref.direction_costs(*req)
        assert c.shape == (len(req[2]),)
        np.testing.assert_array_equal(c, alone_c)
        np.testing.assert_array_equal(k, alone_k)
    other = jax_ref.direction_costs_many([requests[0]] + requests[3:][::-1])[0]
    np.testing.assert_array_equal(other[0], together[0][0])
    if (jax_ref.bucket_of(spec, n).width, jax_ref.bucket_of(spec, n).batch) == jax_ref.TINY:
        assert jax_ref.dir_slots(packs[0].bucket) == jax_ref.DIR_SLOTS > 1
