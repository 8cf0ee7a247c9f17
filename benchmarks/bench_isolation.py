"""Overhead of process isolation per check, against in-process calls in the same process.

    python benchmarks/bench_isolation.py [--cases 200] [--repeats 7] [--impl builtin]

A check needs the implementation's gradients once per case; the rest (JAX reference, finite
differences, comparison under the error model) runs in the harness whichever way the
implementation is called. Both ways validate every result (`Validated`, in-process or in the
worker), so the difference measured is the process boundary alone. Reported, per case:

- the gradient call alone: in-process, isolated with batching (gradients_many), isolated one
  call per round trip;
- a minimal check (gradients + JAX reference gradients + comparison), in-process vs isolated,
  both through gradients_many: the ratio is the overhead per check, target <= 1.10;
- the harness's own checks (properties.checks; vs_jax and vs_fd by default), case by case
  (interleaved, so that all three see the same load): in-process, isolated with one round
  trip per case as the Hypothesis tests make them, and isolated with the call submitted ahead
  (submit_gradients) so that the worker runs while JAX does; when properties is importable;
- CPU time (harness + worker), which a loaded machine distorts less than wall time.

Modes are interleaved over the repeats and medians are taken, after a warm-up that compiles
the JAX buckets and starts the worker (its start-up time is printed separately: it is paid
once per implementation and process).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def make_cases(n: int, seed: int = 0):
    from reference.spec import init_params, mlp, random_batch
    rng = np.random.default_rng(seed)
    acts = ["tanh", "sigmoid", "relu", "identity", "softplus"]
    cases = []
    for _ in range(n):
        depth = int(rng.integers(1, 4))
        widths = [int(w) for w in rng.integers(1, 9, size=depth)]
        spec = mlp(int(rng.integers(1, 7)), widths, [str(a) for a in rng.choice(acts, depth - 1)] + ["identity"],
                   l2=float(rng.choice([0.0, 0.1])))
        params = init_params(spec, rng)
        X, Y = random_batch(spec, rng, int(rng.integers(1, 17)))
        cases.append((spec, params, X, Y))
    return cases


class _Submitted:
    """An implementation whose gradients for one case were submitted ahead of the check."""

    def __init__(self, impl, case):
        self.name, self.capabilities = impl.name, impl.capabilities
        self.pending = impl.submit_gradients(case.spec, case.params, case.X, case.Y)

    def gradients(self, *args):
        return self.pending.result()


def compare(result, ref) -> float:
    cost, grads = result
    flat = np.concatenate([np.concatenate([gW.ravel(), gb.ravel()]) for gW, gb in grads])
    return max(abs(cost - ref.cost), float(np.max(np.abs(flat - ref.flat))))


def _worker_cpu(proxy) -> float:
    """CPU seconds used so far by the proxy's worker process (Linux /proc), or nan."""
    proc = proxy._handle[0]
    try:
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, AttributeError, IndexError, ValueError):
        return float("nan")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--impl", default="builtin")
    p.add_argument("--harness-checks", default="vs_jax,vs_fd", help="properties.checks checks to time (comma-separated)")
    args = p.parse_args(argv)

    from implementations.registry import load
    from reference import jax_ref

    cases = make_cases(args.cases)
    inproc = load(args.impl, isolate=False)
    t0 = time.perf_counter()
    isolated = load(args.impl, isolate=True)
    startup = time.perf_counter() - t0

    for c in cases:  # warm-up: JAX compiles its buckets here, not in the timings
        jax_ref.gradients(*c)
    isolated.gradients_many(cases)

    modes = {
        "calls in-process": lambda: [inproc.gradients(*c) for c in cases],
        "calls isolated, batched": lambda: isolated.gradients_many(cases),
        "calls isolated, one per round trip": lambda: [isolated.gradients(*c) for c in cases],
        # the same shape both ways (all gradients, then the references): only the boundary differs
        "checks in-process": lambda: [compare(out, jax_ref.gradients(*c))
                                      for c, out in zip(cases, inproc.gradients_many(cases))],
        "checks isolated, batched": lambda: [compare(out, jax_ref.gradients(*c))
                                             for c, out in zip(cases, isolated.gradients_many(cases))],
    }
    harness = {}
    try:
        from properties.checks import Case, Context, run_check
        hcases = [Case.make(*c) for c in cases]
        def interleaved(check):
            """The three ways, case by case, so that all see the same load: in-process, isolated
            with one round trip, and isolated with the call submitted ahead (submit_gradients)
            so that the worker computes while the harness computes the JAX reference."""
            def one(make):
                t0 = time.perf_counter()
                ctx = make()
                ctx.ref  # noqa: B018 - the reference first, as a harness that submits ahead would
                run_check(ctx, check)
                return time.perf_counter() - t0

            def run():
                tot = [0.0, 0.0, 0.0]
                for c in hcases:
                    tot[0] += one(lambda: Context(inproc, c))
                    tot[1] += one(lambda: Context(isolated, c))
                    tot[2] += one(lambda: Context(_Submitted(isolated, c), c))
                return tot
            return run

        for check in args.harness_checks.split(","):
            harness[check] = interleaved(check)
            for c in hcases:  # warm-up: compiles
                run_check(Context(inproc, c), check)
    except ImportError as e:
        print(f"(harness checks skipped: {e})")

    hwall = {check: [] for check in harness}
    for _ in range(args.repeats):
        for check, fn in harness.items():
            hwall[check].append(fn())

    wall = {name: [] for name in modes}
    cpu = {name: [] for name in modes}  # harness + worker: less distorted by other load than wall time
    for _ in range(args.repeats):
        for name, fn in modes.items():
            c0, w0, t0 = time.process_time(), _worker_cpu(isolated), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0 + _worker_cpu(isolated) - w0)
    isolated.close()

    n = len(cases)
    med = {k: statistics.median(v) / n for k, v in wall.items()}
    cmed = {k: sum(v) / len(v) / n for k, v in cpu.items()}  # mean: /proc ticks are 10 ms
    print(f"implementation {args.impl!r}: {n} small cases (depth 1-3, widths <= 8, N <= 16), median of "
          f"{args.repeats}; worker start-up {startup * 1e3:.0f} ms (once per implementation and process); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  {'per case':<38} {'wall':>9} {'CPU':>9}   (us)")
    for name in modes:
        print(f"  {name:<38} {med[name] * 1e6:9.1f} {cmed[name] * 1e6:9.1f}")
    base = med["calls in-process"]
    print(f"gradient call alone, isolated/in-process: {med['calls isolated, batched'] / base:.2f} batched, "
          f"{med['calls isolated, one per round trip'] / base:.2f} one per round trip (wall)")

    def ratio(label, iso, inp):
        w, c = med[iso] / med[inp], cmed[iso] / cmed[inp]
        print(f"PER CHECK ({label}): isolated/in-process = {w:.3f} wall ({100 * (w - 1):+.1f}%), "
              f"{c:.3f} CPU ({100 * (c - 1):+.1f}%); {(med[iso] - med[inp]) * 1e6:+.0f} us wall per check")

    ratio("gradients + JAX reference + comparison, batched both ways", "checks isolated, batched", "checks in-process")
    for check, runs in hwall.items():
        inp, iso, sub = (statistics.median(r[k] for r in runs) / n for k in range(3))
        print(f"PER CHECK (harness {check}, interleaved case by case): in-process {inp * 1e6:.0f} us; isolated, one "
              f"round trip {iso * 1e6:.0f} us ({100 * (iso / inp - 1):+.1f}%); isolated, submitted ahead "
              f"{sub * 1e6:.0f} us ({100 * (sub / inp - 1):+.1f}%)")
    print("target: overhead per check <= +10%")


if __name__ == "__main__":
    main()
