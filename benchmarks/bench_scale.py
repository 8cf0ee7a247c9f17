"""Checking at scale: the full finite-difference check of a 784-128-10 MNIST-size MLP (tanh,
softmax cross-entropy, batch 32, float64; 101,770 parameters) with the structured reference
(reference.structured_fd), against torch.autograd.gradcheck, a naive per-parameter loop and the
padded reference, all on the same function and parameters, in this one process; then the
directional modes (ours, gradcheck's fast mode, jax.test_util.check_grads) on single wrong
entries planted in the first layer's gradient; the sampled mode's find rate against the
probability it states; false alarms on the built-in and the zoo at that size; how time grows
with width and depth; and the full check's peak memory (a child process).

    python benchmarks/bench_scale.py [--quick] [--torch-cap 600]

torch is a benchmark-only dependency (`pip install torch==2.13.0`); without it the torch rows
are skipped. gradcheck's slow mode runs whole when its time extrapolated from a subset of the
parameters is within --torch-cap seconds; otherwise the extrapolation is printed, said as such.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

from implementations.numpy_mlp import NumpyMLP, builtin  # noqa: E402
from implementations.registry import load  # noqa: E402
from properties import scale_checks  # noqa: E402
from properties.checks import run_check  # noqa: E402
from reference import fd, jax_ref, structured_fd  # noqa: E402
from reference.spec import flatten, init_params, mlp, random_batch  # noqa: E402

SPEC = mlp(784, [128, 10], ["tanh", "identity"], "softmax_ce")
N = 32
HAS_TORCH = importlib.util.find_spec("torch") is not None


def make_case(spec=SPEC, n=N, seed=0):
    rng = np.random.default_rng(seed)
    params = init_params(spec, rng)
    X, Y = random_batch(spec, rng, n)
    return scale_checks.NetworkCase.make(spec, params, X, Y, label="mnist-size")


def timed(f, *a, **k):
    t0 = time.perf_counter()
    out = f(*a, **k)
    return out, time.perf_counter() - t0


class Planted(NumpyMLP):
    """The built-in's gradient with one first-layer weight's entry replaced (a single wrong entry)."""
    name = "planted"

    def __init__(self, i: int, j: int, value: float):
        self.at, self.value = (i, j), value

    def gradients(self, spec, params, X, Y):
        cost, grads = super().gradients(spec, params, X, Y)
        grads[0][0][self.at] = self.value
        return cost, grads


# --- the same cost in torch and in jax, with a given gradient as its backward ---------------

def torch_cost(case):
    import torch
    Xt, labels = torch.tensor(case.X), torch.tensor(case.Y.argmax(1))
    shapes = case.spec.shapes()

    def cost(theta):
        i, h = 0, Xt
        for k, (ws, bs) in enumerate(shapes):
            W = theta[i:i + ws[0] * ws[1]].view(ws)
            i += ws[0] * ws[1]
            b = theta[i:i + bs[0]]
            i += bs[0]
            z = h @ W.T + b
            h = torch.tanh(z) if k < len(shapes) - 1 else z
        return torch.nn.functional.cross_entropy(h, labels)   # batch mean of softmax CE
    return cost


def torch_with_gradient(case, grad):
    """A torch function whose forward is the cost and whose backward is the given gradient
    (the implementation under test), as a user would wrap hand-written backprop for gradcheck."""
    import torch
    cost, g = torch_cost(case), torch.tensor(grad)

    class F(torch.autograd.Function):
        @staticmethod
        def forward(ctx, theta):
            with torch.no_grad():
                return cost(theta)

        @staticmethod
        def backward(ctx, out):
            return out * g
    return F.apply


def jax_with_gradient(case, grad):
    import jax
    import jax.numpy as jnp
    spec, X, labels = case.spec, jnp.asarray(case.X), jnp.asarray(case.Y)
    g = jnp.asarray(grad)

    def cost(theta):
        i, h = 0, X
        for k, (ws, bs) in enumerate(spec.shapes()):
            W = theta[i:i + ws[0] * ws[1]].reshape(ws)
            i += ws[0] * ws[1]
            b = theta[i:i + bs[0]]
            i += bs[0]
            z = h @ W.T + b
            h = jnp.tanh(z) if k < spec.depth - 1 else z
        return jnp.mean(jax.nn.logsumexp(h, axis=1) - jnp.sum(labels * h, axis=1))

    @jax.custom_vjp
    def f(theta):
        return cost(theta)
    f.defvjp(lambda theta: (cost(theta), None), lambda _, c: (c * g,))
    return f, jax.jit(cost)


def torch_threads(case) -> int:
    """The faster of 1 and 2 torch threads for this cost on this machine now (with other work
    running, two OpenMP threads can be many times slower than one)."""
    import torch
    cost = torch_cost(case)
    theta = torch.tensor(flatten(case.params))
    best = None
    for n in (1, 2):
        torch.set_num_threads(n)
        cost(theta)
        _, t = timed(lambda: [cost(theta) for _ in range(20)])
        best = (t, n) if best is None or t < best[0] else best
    torch.set_num_threads(best[1])
    return best[1]


def torch_child(threads: int) -> None:
    """gradcheck's slow mode on every entry of the benchmark's case; prints its time."""
    import torch
    from torch.autograd import gradcheck
    torch.set_num_threads(threads)
    case = make_case()
    grad = flatten(builtin.gradients(SPEC, case.params, case.X, case.Y)[1])
    f = torch_with_gradient(case, grad)
    theta = torch.tensor(flatten(case.params)).requires_grad_(True)
    ok, t = timed(gradcheck, f, (theta,), fast_mode=False)
    print("passed" if ok else "failed", t)


# --- the sections ------------------------------------------------------------------------------

def full_check(case, quick: bool, torch_cap: float) -> dict:
    print("== full finite-difference check: 784-128-10, tanh, softmax_ce, batch 32, float64 ==")
    P = SPEC.n_params
    ctx = scale_checks.ScaleContext(load("builtin"), case)
    _, t_setup = timed(lambda: (ctx.impl_result, ctx.ref, ctx.tolerances, ctx.cost_error))
    _, t_cold = timed(run_check, ctx, "richardson")              # compiles (or loads) its programs
    rich, t_rich = timed(run_check, ctx, "richardson")
    ctx.__dict__.pop("central", None)
    central, t_central = timed(run_check, ctx, "vs_fd")
    for v, t, name in ((rich, t_rich, "richardson (4 costs per entry, error O(h^4))"),
                       (central, t_central, "central    (4 costs per entry: D(h), D(2h))")):
        decided = v.n_entries - v.n_kinks - v.n_undecided
        print(f"  ours {name}: {t:.2f} s; {v.status}; median rel err {v.median_error:.2g}; "
              f"decided {decided:,} of {v.n_entries:,} ({v.n_kinks} kinks, {v.n_undecided} undecided); "
              f"worst {v.worst}: {v.worst_error:.2g} vs bound {v.bound:.2g}")
    print(f"  (setup: reference gradient + error model {t_setup:.2f} s; first richardson run with compiles {t_cold:.2f} s)")
    out = {"ours": t_rich}

    # a naive per-parameter loop: a jitted exact-shape cost, two whole forward passes per entry
    _, jitted = jax_with_gradient(case, ctx.impl_result[1])
    theta = ctx.packed.theta
    jitted(theta).block_until_ready()
    k = 500 if quick else 2000
    h = fd.default_step(theta)

    def naive(entries):
        for i in entries:
            tp, tm = theta.copy(), theta.copy()
            tp[i] += h[i]
            tm[i] -= h[i]
            float(jitted(tp)), float(jitted(tm))
    _, t = timed(naive, range(k))
    out["naive"] = t * P / k
    print(f"  naive per-parameter loop (jitted JAX cost, 2 forward passes per entry): {t:.2f} s for {k:,} entries, "
          f"{out['naive']:.0f} s for all {P:,} (extrapolated)")

    # the padded reference: jax_ref.perturbed_costs in its 1024-wide bucket
    pk = jax_ref.pack(SPEC, case.params, case.X, case.Y)
    kp = 64 if quick else 256
    idx = np.arange(kp)
    jax_ref.perturbed_costs(pk, idx[:16], theta[:16])   # compile (or load) the smallest chunk shape
    _, tc = timed(jax_ref.perturbed_costs, pk, np.tile(idx, 4), np.tile(theta[idx], 4))
    _, t = timed(jax_ref.perturbed_costs, pk, np.tile(idx, 4), np.tile(theta[idx], 4))
    out["padded"] = t * P / kp
    print(f"  padded reference (jax_ref, {pk.bucket.width}-wide bucket), 4 costs per entry: {t:.2f} s for {kp} entries, "
          f"{out['padded']:.0f} s for all (extrapolated; first call {tc:.1f} s with compiles)")

    if HAS_TORCH:
        import torch
        from torch.autograd import gradcheck
        threads = torch_threads(case)
        f = torch_with_gradient(case, ctx.impl_result[1])
        full = torch.tensor(theta)
        ks = 300 if quick else 1500
        rest = full[ks:]
        s0 = full[:ks].clone().requires_grad_(True)
        ok, t = timed(gradcheck, lambda s: f(torch.cat([s, rest])), (s0,), fast_mode=False)
        est = t * P / ks
        print(f"  torch.autograd.gradcheck slow mode ({threads} thread(s)): {t:.2f} s for the first {ks:,} entries "
              f"({'passed' if ok else 'FAILED'}), {est:.0f} s for all (extrapolated)")
        out["torch"], out["torch_said"] = est, f"extrapolated from {ks:,} entries"
        if not quick:
            child = [sys.executable, __file__, "--torch-child", str(threads)]
            try:
                run = subprocess.run(child, capture_output=True, text=True, timeout=torch_cap, check=True)
                t = float(run.stdout.split()[-1])
                print(f"  torch.autograd.gradcheck slow mode, all {P:,} entries: {t:.1f} s, measured (a child process; "
                      f"its tolerance atol 1e-5 + rtol 1e-3)")
                out["torch"], out["torch_said"] = t, "measured"
            except subprocess.TimeoutExpired:
                print(f"  torch.autograd.gradcheck slow mode, all entries: not done within the {torch_cap:.0f} s cap "
                      f"(stopped): the extrapolation stands")
                out["torch_said"] += f" (the whole run exceeded the {torch_cap:.0f} s cap)"
    with_setup = t_rich + t_setup
    print(f"  ratios, time of the other / ours (richardson {t_rich:.2f} s; with its reference gradient and error "
          f"model {with_setup:.2f} s):")
    for key, what in (("torch", "torch gradcheck slow mode"), ("naive", "naive per-parameter loop"),
                      ("padded", "padded reference")):
        if key in out:
            said = out.get("torch_said", "extrapolated") if key == "torch" else "extrapolated"
            print(f"    {what:<28} {out[key] / t_rich:8.0f}x   {out[key] / with_setup:8.0f}x with setup   ({said})")
    return out


def planted_single_entry(case, quick: bool):
    print("== a single wrong entry (mutant SingleEntryOff: layer 1 W[0,0] off by 1e-3 x the largest entry) ==")
    ctx = scale_checks.ScaleContext(load("implementations.mutants:SingleEntryOff"), case)
    for check in ("vs_fd", "richardson"):
        v = run_check(ctx, check)
        print(f"  full {check}: {v.status}, worst {v.worst}, {v.message}")
    runs, fraction = (10, 0.1) if quick else (30, 0.1)
    found, drawn_ok, stated = 0, True, None
    for seed in range(runs):
        v = scale_checks.check_sampled(ctx, fraction=fraction, seed=seed)
        drawn = 0 in scale_checks.stratified_sample(SPEC, fraction, seed)[0]
        hit = v.status == "failed" and str(v.worst) == "layer 1 W[0,0]"
        found += hit
        drawn_ok &= hit == drawn
        stated = v.extra["strata"][0]["miss_probability"]
    print(f"  sampled_fd at {fraction:g}: found and located in {found} of {runs} seeds; stated miss probability in "
          f"layer 1 W {stated:.3g} (expected {runs * (1 - stated):.1f} of {runs}); found exactly when drawn: {drawn_ok}")


def directional(case, quick: bool):
    print("== directional modes, single wrong entries planted in layer 1's gradient ==")
    ref = structured_fd.gradients(SPEC, case.params, case.X, case.Y)
    g1 = np.abs(ref.grads[0][0])
    rng = np.random.default_rng(1)
    # entries of typical size (the median |g| of layer 1), set to zero: a dropped term
    typical = np.argsort(np.abs(g1.ravel() - np.median(g1)))[:200]
    trials = [np.unravel_index(i, g1.shape) for i in rng.choice(typical, 3 if quick else 10, replace=False)]
    print(f"  {len(trials)} trials: one entry of |g| ~ {np.median(g1):.2g} (layer 1's median) set to 0; "
          f"the largest entry is {np.abs(ref.flat).max():.2g}")
    rows = {}
    for t, (i, j) in enumerate(trials):
        impl = Planted(int(i), int(j), 0.0)
        grad = flatten(impl.gradients(SPEC, case.params, case.X, case.Y)[1])
        c = scale_checks.NetworkCase.make(SPEC, case.params, case.X, case.Y, direction_seed=t)
        ctx = scale_checks.ScaleContext(impl, c)
        _, setup = timed(lambda: (ctx.impl_result, ctx.ref, ctx.tolerances, ctx.cost_error))
        v, dt = timed(scale_checks.check_directions, ctx, 8)
        rows.setdefault("ours: 8 Rademacher directions", []).append((v.status == "failed", dt))
        rows.setdefault("  (+ our reference gradient and error model)", []).append((None, setup))
        if HAS_TORCH:
            import torch
            from torch.autograd import gradcheck
            f = torch_with_gradient(case, grad)
            ok, dt = timed(gradcheck, f, (torch.tensor(flatten(case.params)).requires_grad_(True),),
                           fast_mode=True, raise_exception=False)
            rows.setdefault("torch gradcheck fast_mode", []).append((not ok, dt))
        from jax.test_util import check_grads
        f, _ = jax_with_gradient(case, grad)
        t0 = time.perf_counter()
        try:
            check_grads(f, (flatten(case.params),), 1, modes=("rev",))
            caught = False
        except AssertionError:
            caught = True
        dt = time.perf_counter() - t0
        rows.setdefault("jax.test_util.check_grads (rev)", []).append((caught, dt))
    for name, r in rows.items():
        caught = "" if r[0][0] is None else f"caught {sum(c for c, _ in r)} of {len(r)}; "
        print(f"  {name:<46} {caught}median time {np.median([dt for _, dt in r]):.3f} s")
    v = scale_checks.check_directions(scale_checks.ScaleContext(load("builtin"), case), 8)
    print(f"  ours on the correct gradient: {v.status}; {v.message}")


def false_alarms(case, quick: bool):
    print("== false alarms at 784-128-10: every check, the built-in and the zoo ==")
    from zoo import MEMBERS
    members = ["builtin"] + [m for m in MEMBERS if m != "scalar_engine.py:IMPL"
                             and (MEMBERS[m] is None or importlib.util.find_spec(MEMBERS[m]))]
    if quick:
        members = members[:2]
    f32 = make_case(SPEC.with_(dtype="float32"))
    for m in members:
        source = m if m == "builtin" else str(ROOT / "tests" / "zoo" / m.split(":")[0]) + ":" + m.split(":")[1]
        impl = load(source)
        c = case if impl.capabilities.supports(SPEC) is None else f32
        why = impl.capabilities.supports(c.spec)
        if why:
            print(f"  {m:<28} not declared: {why}")
            continue
        vs, dt = timed(scale_checks.run_checks, impl, c, impl_ref=source)
        bad = [v for v in vs if v.status in ("failed", "error", "reference_mismatch")]
        print(f"  {m:<28} {c.spec.dtype}: {len(vs) - len(bad)} of {len(vs)} checks ok, {len(bad)} false alarms, {dt:.1f} s"
              + "".join(f"\n      {v.summary()}" for v in bad))
    print("  scalar_engine.py:IMPL       left out: a scalar autodiff graph of ~10^7 Python objects per call at this size")


def scaling(quick: bool):
    print("== time of the full check (central, all entries, compiles excluded, best of 2) by width and depth ==")
    widths = [64, 128, 256] if quick else [64, 128, 256, 512, 1024]
    depths = [1, 2] if quick else [1, 2, 3, 4]
    rows = []
    for label, specs in (("width", [mlp(784, [w, 10], ["tanh", "identity"], "softmax_ce") for w in widths]),
                         ("depth", [mlp(784, [128] * d + [10], ["tanh"] * d + ["identity"], "softmax_ce")
                                    for d in depths])):
        xs, ts = [], []
        for spec in specs:
            c = make_case(spec)
            net = structured_fd.Network(spec, c.params, c.X, c.Y)
            ref = net.gradients()
            e_c = fd.cost_rounding(ref.cost, ref.output_sensitivity, spec.depth)
            for l, start in enumerate(net._starts[:-1]):   # compile the chunk shape the timed run uses
                size = structured_fd.chunk_size(spec, N, l, 4 * (net._starts[l + 1] - start))
                net.costs(np.full(size, start), np.full(size, net.theta[start]))
            t = min(timed(fd.central_checker, net.costs, spec, net.theta, ref.flat, e_c)[1]
                    for _ in range(1 if quick else 2))   # the best of two: other work shares the machine
            x = spec.layers[0].width if label == "width" else spec.depth - 1
            xs.append(x), ts.append(t)
            rows.append(f"  {label} {x:>5}: {spec.describe():<48} {spec.n_params:>9,} params  {t:7.2f} s  "
                        f"{t / spec.n_params * 1e6:6.2f} us/entry")
        slope = np.polyfit(np.log(xs), np.log(ts), 1)[0]
        rows.append(f"  fitted exponent, time ~ {label}^{slope:.2f}")
    print("\n".join(rows))


def memory_child() -> None:
    """Peak resident memory of the full check (every FD check of MODES['full']), in this child
    process: before it (imports, case, reference) and after."""
    case = make_case()
    ctx = scale_checks.ScaleContext(load("builtin"), case)
    ctx.impl_result, ctx.ref, ctx.tolerances
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for check in scale_checks.MODES["full"]:
        scale_checks.run_check(ctx, check)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{before:.0f} {after:.0f}")


def memory():
    print("== peak memory of the 784-128-10 full check (every check, a child process) ==")
    out = subprocess.run([sys.executable, __file__, "--memory-child"], capture_output=True, text=True, check=True)
    before, after = (float(x) for x in out.stdout.split()[-2:])
    print(f"  peak RSS {after:.0f} MB; {before:.0f} MB before the checks (Python, JAX, the network, its reference "
          f"and error model); the checks add {after - before:.0f} MB (chunks of <= {structured_fd.CHUNK_ELEMENTS:,} "
          f"elements per array)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller subsets and tables (while developing)")
    ap.add_argument("--torch-cap", type=float, default=600.0, help="seconds: run gradcheck's slow mode whole "
                                                                     "if its extrapolated time is within this")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--torch-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        return memory_child()
    if args.torch_child:
        return torch_child(args.torch_child)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    if HAS_TORCH:
        import torch
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    else:
        print("torch not installed: its rows are skipped")
    case = make_case()
    memory()
    full_check(case, args.quick, args.torch_cap)
    planted_single_entry(case, args.quick)
    directional(case, args.quick)
    false_alarms(case, args.quick)
    scaling(args.quick)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
