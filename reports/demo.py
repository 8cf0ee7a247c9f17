"""Synthetic but realistic verdict records, for the report's tests, its benchmark and a demo page.

The shapes follow what the checks record (properties/checks.py, the perceptron and training-rule
checks, plug-in loading): one gradient case gives one verdict per check kind, errors sit where
each checker's error model puts them, a mutant fails where its bug bites, a broken plug-in
gives error verdicts. Deterministic for a given seed.

    python -m reports.demo [N] [out.html]     writes a demo report (default 2000 verdicts)
"""
from __future__ import annotations

import random
import sys

from reference.spec import ACTIVATIONS, LOSSES, NetworkSpec, Layer
from reference.verdict import ERROR, FAILED, NOT_CHECKABLE, PASSED, REFERENCE_MISMATCH, Entry, Verdict

# check kind -> (mean, spread) of log10 worst relative error for a correct implementation, bound
GRADIENT = {"vs_jax": (-15.3, 0.6, 1e-11), "vs_fd": (-9.0, 1.0, 1e-6), "richardson": (-11.0, 1.0, 1e-8),
            "slide_fd": (-8.2, 1.1, 1e-5), "directional": (-9.6, 0.9, 1e-6),
            "intermediates": (-15.0, 0.7, 1e-11), "reference_agreement": (-9.2, 0.9, 1e-6)}
IMPLS = ("numpy-builtin", "mutant-sigmoid-prime", "student-mlp")
MUTANT_BUG = "sigmoid"  # the mutant's derivative is wrong wherever a sigmoid layer is


def _spec(rng: random.Random) -> NetworkSpec:
    acts = [a for a in ACTIVATIONS if a != "maxout"]
    depth = rng.choice([1, 2, 2, 3, 3, 4])
    loss = rng.choice(list(LOSSES))
    layers = [Layer(rng.randint(1, 6), rng.choice(acts)) for _ in range(depth - 1)]
    out = 3 if loss == "softmax_ce" else rng.choice([1, 2])
    layers.append(Layer(out, rng.choice(["identity", "identity", "tanh", "sigmoid"])))
    return NetworkSpec(rng.randint(1, 5), tuple(layers), loss, rng.choice([0.0, 0.0, 0.1]),
                       rng.choice(["float64", "float64", "float64", "float32"]))


def _worst(rng: random.Random, spec: NetworkSpec, layer: int | None = None) -> Entry:
    j = layer or rng.randint(1, spec.depth)
    (rows, cols), _ = spec.shapes()[j - 1]
    if rng.random() < 0.75:
        return Entry(j, "W", (rng.randrange(rows), rng.randrange(cols)))
    return Entry(j, "b", (rng.randrange(rows),))


def _reproducer(spec: NetworkSpec, impl: str, check: str, seed: int) -> str:
    return "\n".join([
        "import numpy as np",
        "from reference.spec import NetworkSpec, Layer, init_params, random_batch",
        "from properties.checks import Case, reproduce",
        f"spec = {spec.repr_code()}",
        f"rng = np.random.default_rng({seed})",
        "params = init_params(spec, rng)",
        "X, Y = random_batch(spec, rng, 4)",
        f"print(reproduce({impl!r}, {check!r}, Case.make(spec, params, X, Y)).explain())",
    ])


def gradient_case(rng: random.Random, impl: str, seed: int) -> list[Verdict]:
    spec = _spec(rng)
    n = spec.n_params
    case = f"{spec.describe()}, N={rng.randint(1, 8)}"
    broken = impl.startswith("mutant") and any(l.activation == MUTANT_BUG for l in spec.layers)
    kinked = any(l.kinked for l in spec.layers) or spec.loss in ("l1", "perceptron", "hinge")
    out = []
    for check, (mu, sd, bound) in GRADIENT.items():
        if spec.dtype == "float32":  # float32 arithmetic in the implementation dominates every check
            mu, sd, bound = -5.5, 0.6, 1e-2
        who = "reference" if check == "reference_agreement" else impl
        err = 10 ** min(rng.gauss(mu, sd), -0.5)
        status = PASSED
        layer = None
        if broken and who != "reference":
            layer = next(j for j, l in enumerate(spec.layers, 1) if l.activation == MUTANT_BUG)
            err, status = 10 ** rng.uniform(-3, -0.4), FAILED
        elif who == "reference" and rng.random() < 0.002:
            err, status = bound * 40, REFERENCE_MISMATCH
        elif check == "intermediates" and impl == "student-mlp":
            out.append(Verdict(check, NOT_CHECKABLE, impl, spec.to_dict(), case,
                               message="the implementation does not expose per-layer intermediates",
                               seconds=0.0002))
            continue
        worst = _worst(rng, spec, layer)
        ref = rng.uniform(-1, 1)
        val = ref * (1 + 2 * err) if status == FAILED else ref * (1 + err)
        out.append(Verdict(
            check, status, who, spec.to_dict(), case, max_error=err, median_error=err * 10 ** rng.uniform(-3, -0.5),
            bound=bound, worst=worst, worst_values=(val, ref), worst_error=err, n_entries=n,
            n_kinks=rng.randint(1, 3) if kinked and rng.random() < 0.3 else 0,
            n_undecided=rng.randint(1, 2) if check == "slide_fd" and rng.random() < 0.1 else 0,
            reproducer=_reproducer(spec, impl, check, seed) if status != PASSED else "",
            seconds=rng.uniform(0.002, 0.08), extra={"test": f"properties/test_gradients.py::test_{check}[{impl}]"}))
    return out


def perceptron_case(rng: random.Random, impl: str) -> Verdict:
    bound = 10 ** rng.uniform(0.3, 3.5)
    k = int(bound * rng.uniform(0.02, 0.9))
    status = PASSED
    if impl.startswith("mutant") and rng.random() < 0.15:
        k, status = int(bound * rng.uniform(1.2, 3)) + 1, FAILED
    return Verdict("perceptron_bound", status, impl, None, f"separable, n={rng.randint(4, 200)}, d={rng.randint(2, 10)}",
                   message="" if status == PASSED else f"{k} updates exceed the Novikoff bound {bound:.4g}",
                   seconds=rng.uniform(0.001, 0.02), extra={"k": k, "bound": bound, "ratio": k / bound})


def synthetic_verdicts(n: int, seed: int = 0) -> list[dict]:
    """About n verdict records (as JSON dicts) over the three demo implementations."""
    rng = random.Random(seed)
    out: list[Verdict] = [
        Verdict("load", ERROR, "broken_plugin.py:Impl", message="'broken_plugin.py:Impl': importing "
                "'broken_plugin.py' failed: ModuleNotFoundError: No module named 'torch'"),
        Verdict("call", ERROR, "student-mlp", NetworkSpec(2, (Layer(3, "relu"), Layer(1))).to_dict(),
                "2 -> 3:relu -> 1:identity | mse, N=1", message="gradients() returned layer 1 W as float32, "
                "declared float64", reproducer=_reproducer(NetworkSpec(2, (Layer(3, "relu"), Layer(1))),
                                                          "student-mlp", "vs_jax", 11)),
    ]
    i = 0
    while len(out) < n:
        impl = IMPLS[i % len(IMPLS)]
        if rng.random() < 0.12:
            out.append(perceptron_case(rng, impl))
        elif rng.random() < 0.05:
            out.append(Verdict("training_rule", PASSED, impl, None, "seed 002 SGD step, eta=0.1",
                               max_error=10 ** rng.gauss(-15, 0.5), bound=1e-12, seconds=0.003))
        else:
            out.extend(gradient_case(rng, impl, seed * 100003 + i))
        i += 1
    return [v.to_json() for v in out[:n]]


def passing_verdicts(n: int = 300, seed: int = 0) -> list[dict]:
    """A passing run that has every trap for a report that could mislead: not-checkable verdicts
    whose undecided entries carry relative error 1 against bounds of 1e7 to 1e22, verdicts mostly
    undecided, kinks, and work the implementation did not declare (recorded as not checkable).
    None of it may look like an error, let alone a failure."""
    rng = random.Random(seed)
    out: list[Verdict] = []
    i = 0
    while len(out) < n:
        i += 1
        if rng.random() < 0.1:
            out.append(perceptron_case(rng, "numpy-builtin"))
            continue
        for v in gradient_case(rng, "numpy-builtin", seed * 100003 + i):
            if v.status != PASSED:  # the rare reference mismatch of the demo: not in a passing run
                continue
            if rng.random() < 0.08:  # no decided entry: every one a kink or undecided, "error" 1 against a huge bound
                v.status, v.message, v.reproducer = NOT_CHECKABLE, (
                    "every entry is a kink or undecided; undecided: 4 entries whose bound is 1/2 or more"), ""
                v.max_error = v.worst_error = 1.0
                v.bound = rng.choice([1.8e7, 3.6e22])
                v.n_kinks = rng.randint(0, 2)
                v.n_undecided = v.n_entries - v.n_kinks
            elif rng.random() < 0.1:  # mostly undecided, the rest decided and passing
                v.n_undecided = max(v.n_entries - 2 - v.n_kinks, 0)
            if v.status == PASSED and v.worst_error > v.bound:  # the demo's spread reaches past the bound
                v.max_error = v.worst_error = v.bound * rng.uniform(0.2, 0.9)
            out.append(v)
    for msg, k in (("not declared: output activations other than identity", 7),
                   ("not declared: activations sigmoid, softplus, maxout", 4), ("not declared: loss hinge", 2)):
        out += [Verdict("declared", NOT_CHECKABLE, "numpy-builtin", message=msg,
                        extra={"test": f"properties/test_fixed.py::test_fixed_case[{j}]"}) for j in range(k)]
    return [v.to_json() for v in out]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 2000
    path = argv[1] if len(argv) > 1 else "backcheck-demo.html"
    from reports.html import write_html
    from reports.results import results_document
    from reports.stepcurve import step_curve
    write_html(results_document(synthetic_verdicts(n), {"hypothesis_profile": "ci", "seed": "derandomized",
                                                        "duration": 42.0, "step_curve": step_curve()}), path)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
