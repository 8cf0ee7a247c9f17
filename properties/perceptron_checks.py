"""The perceptron checks: pure functions of (implementation, case) -> Verdict.

An implementation is anything with `.perceptron(X, y, max_epochs)` returning an object with
`w` (D,), `updates` (k) and `converged`; `passes` and `mistakes` (sample index per update) are
checked when present (reference.perceptron.PerceptronResult has them all). X is passed as is:
a bias, where the data need one, is the weight of the constant last column (augmentation).

    perceptron_bound        converges within floor((R/gamma)^2) + 1 passes, k <= (R/gamma)^2
                            (decided exactly), and the final w separates the data (exactly)
    perceptron_tight        the same on the e_i family, plus k = d exactly
    perceptron_invariance   x -> 2^j x: same mistake sequence (and k, passes), w -> 2^j w bit
                            for bit; (x, y) -> (-x, -y): same k and mistakes, the same w
    perceptron_nonseparable reported as not converging within the budget, after >= 1 update
                            per pass

Why bit for bit: multiplying by a power of two commutes with every float operation (no
over/underflow here), and (-y)(-x) = y x exactly, so any perceptron built from +, -, * on the
data makes the same decisions and produces exactly scaled (or the same) weights.

Each verdict's `extra` carries k, the bound and k / bound, so a report can plot updates against
the bound.
"""
from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np

from implementations.errors import PluginError
from properties import perceptron_strategies as ps
from reference.perceptron import margin, novikoff_bound, novikoff_budget, radius_squared, separates
from reference.verdict import ERROR, FAILED, PASSED, REFERENCE_MISMATCH, Verdict

BOUND, TIGHT, INVARIANCE, NONSEPARABLE = (
    "perceptron_bound", "perceptron_tight", "perceptron_invariance", "perceptron_nonseparable")
CHECKS = (BOUND, TIGHT, INVARIANCE, NONSEPARABLE)
INLINE_MAX = 400   # reproducers inline the data up to this many numbers


class Unusable(Exception):
    """The implementation raised or returned something that is not a perceptron result."""


class Run(NamedTuple):
    w: np.ndarray
    updates: int
    converged: bool
    passes: int | None
    mistakes: tuple | None


def run(impl, X, y, max_epochs: int) -> Run:
    """Call impl.perceptron on copies and validate what comes back (Unusable if junk)."""
    name = "perceptron()"
    try:
        r = impl.perceptron(X.copy(), y.copy(), int(max_epochs))
    except PluginError as e:  # already one line naming the implementation and the problem
        raise Unusable(str(e)) from e
    except Exception as e:  # the plug-in's fault, whatever it raised
        raise Unusable(f"{name} raised {type(e).__name__}: {e}") from e
    missing = [a for a in ("w", "updates", "converged") if not hasattr(r, a)]
    if missing:
        raise Unusable(f"{name} returned {type(r).__name__} without {', '.join(missing)}")
    try:
        w = np.asarray(r.w, dtype=np.float64)
    except (TypeError, ValueError):
        raise Unusable(f"{name} returned w of type {type(r.w).__name__}, expected an array") from None
    if w.shape != (X.shape[1],) or not np.all(np.isfinite(w)):
        raise Unusable(f"{name} returned w of shape {w.shape}, expected finite ({X.shape[1]},)")
    k = r.updates
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise Unusable(f"{name} returned updates={k!r}, expected a non-negative integer")
    if not isinstance(r.converged, (bool, np.bool_)):
        raise Unusable(f"{name} returned converged={r.converged!r}, expected a bool")
    passes = getattr(r, "passes", None)
    mistakes = getattr(r, "mistakes", None)
    return Run(w, int(k), bool(r.converged), None if passes is None else int(passes),
               None if mistakes is None else tuple(int(i) for i in mistakes))


def _verdict(check, impl, case, status, message, extra, started, impl_ref=None, budget=None) -> Verdict:
    v = Verdict(check=check, status=status, implementation=getattr(impl, "name", str(impl)),
                case=case.describe(), message=message, extra=extra, seconds=time.perf_counter() - started)
    if status in (FAILED, ERROR):
        v.reproducer = reproducer(impl, case, budget, impl_ref)
    return v


def reproducer(impl, case, budget, impl_ref=None) -> str:
    ref = impl_ref or getattr(impl, "spec_string", None) or getattr(impl, "name", "builtin")
    if case.X.size + case.y.size > INLINE_MAX:
        return (f"# {case.describe()}: too large to inline; rerun the property (Hypothesis prints "
                f"the failing example and its blob)")
    return "\n".join([
        "import numpy as np",
        "from implementations.registry import load",
        f"X = np.array({case.X.tolist()!r})",
        f"y = np.array({case.y.tolist()!r})",
        f"print(load({ref!r}).perceptron(X, y, {budget}))",
    ])


def _bound_extra(case, k, B, budget, r: Run | None) -> dict:
    return {"k": k, "bound": float(B), "ratio": k / float(B), "bound_exact": str(B), "budget": budget,
            "passes": None if r is None else r.passes, "converged": None if r is None else r.converged,
            "R": math.sqrt(radius_squared(case.X)), "gamma": margin(case.X, case.y, case.w_star),
            "n": int(case.X.shape[0]), "d": int(case.X.shape[1])}


def _separation_problem(X, y, w, what: str = "the final w") -> str | None:
    ok, culprit = separates(X, y, w)
    return None if ok else f"{what} does not separate the data: y (w . x) <= 0 at sample {culprit}"


def _describe(r: Run, budget: int) -> str:
    if r.converged:
        return f"converged with k = {r.updates} updates" + (f" in {r.passes} passes" if r.passes else "")
    return f"did not converge within {budget} passes ({r.updates} updates)"


def check_bound(impl, case: ps.SeparableCase, impl_ref: str | None = None) -> Verdict:
    """perceptron_bound (perceptron_tight when the case knows its exact k)."""
    t0 = time.perf_counter()
    check = TIGHT if case.expected_k is not None else BOUND
    B = novikoff_bound(case.X, case.y, case.w_star)
    budget = novikoff_budget(B)
    try:
        r = run(impl, case.X, case.y, budget)
    except Unusable as e:
        return _verdict(check, impl, case, ERROR, str(e), {"bound": float(B), "budget": budget}, t0, impl_ref, budget)
    k = r.updates
    problems = []
    if not r.converged:
        problems.append(f"did not converge within {budget} passes = floor(bound) + 1, which always "
                        f"suffice on separable data")
    if k > B:  # exact: int <= Fraction
        problems.append(f"k = {k} updates exceeds the Novikoff bound (R/gamma)^2 = {B} = {float(B):.17g}")
    if r.converged:
        problems.append(_separation_problem(case.X, case.y, r.w))
    if case.expected_k is not None and k != case.expected_k:
        problems.append(f"k = {k}, expected exactly {case.expected_k} (each e_i is a mistake exactly once)")
    if r.mistakes is not None and len(r.mistakes) != k:
        problems.append(f"reports {len(r.mistakes)} mistakes for {k} updates")
    problems = [p for p in problems if p]
    msg = "; ".join(problems) or f"{_describe(r, budget)}; k = {k} <= (R/gamma)^2 = {float(B):.6g}"
    return _verdict(check, impl, case, FAILED if problems else PASSED, msg,
                    _bound_extra(case, k, B, budget, r), t0, impl_ref, budget)


def _compare_runs(base: Run, other: Run, what: str, w_expected: np.ndarray) -> list[str]:
    out = []
    if base.mistakes is not None and other.mistakes is not None and base.mistakes != other.mistakes:
        i = next((j for j, (a, b) in enumerate(zip(base.mistakes, other.mistakes)) if a != b),
                 min(len(base.mistakes), len(other.mistakes)))
        out.append(f"{what}: the mistake sequence differs from update {i} on")
    if base.updates != other.updates:
        out.append(f"{what}: k = {other.updates}, expected {base.updates}")
    if base.converged != other.converged:
        out.append(f"{what}: converged = {other.converged}, expected {base.converged}")
    if base.passes is not None and other.passes is not None and base.passes != other.passes:
        out.append(f"{what}: {other.passes} passes, expected {base.passes}")
    if not np.array_equal(other.w, w_expected):
        j = int(np.argmax(other.w != w_expected))
        out.append(f"{what}: w[{j}] = {other.w[j]!r}, expected {w_expected[j]!r} exactly")
    return out


def check_invariance(impl, case_and_exponent, impl_ref: str | None = None) -> Verdict:
    """perceptron_invariance on (case, j): scaling by 2^j and flipping the signs of x and y."""
    t0 = time.perf_counter()
    case, j = case_and_exponent
    c = 2.0 ** j
    B = novikoff_bound(case.X, case.y, case.w_star)    # the same for c X and for (-X, -y)
    budget = novikoff_budget(B)
    try:
        base = run(impl, case.X, case.y, budget)
        scaled = run(impl, case.X * c, case.y, budget)
        flipped = run(impl, -case.X, -case.y, budget)
    except Unusable as e:
        return _verdict(INVARIANCE, impl, case, ERROR, str(e), {"budget": budget}, t0, impl_ref, budget)
    problems = _compare_runs(base, scaled, f"x -> 2^{j} x", base.w * c)
    problems += _compare_runs(base, flipped, "(x, y) -> (-x, -y)", base.w)
    for r, X, y, what in ((scaled, case.X * c, case.y, "scaled"), (flipped, -case.X, -case.y, "flipped")):
        if r.converged:
            problems.append(_separation_problem(X, y, r.w, f"the {what} run's final w"))
    problems = [p for p in problems if p]
    extra = {**_bound_extra(case, base.updates, B, budget, base), "scale_exponent": j}
    msg = "; ".join(problems) or f"same k = {base.updates} and mistakes under x -> 2^{j} x and (x, y) -> (-x, -y)"
    return _verdict(INVARIANCE, impl, case, FAILED if problems else PASSED, msg, extra, t0, impl_ref, budget)


def check_nonseparable(impl, case: ps.NonSeparableCase, impl_ref: str | None = None) -> Verdict:
    """perceptron_nonseparable: the run must end at the budget, not converged."""
    t0 = time.perf_counter()
    budget = case.max_epochs
    try:
        r = run(impl, case.X, case.y, budget)
    except Unusable as e:
        return _verdict(NONSEPARABLE, impl, case, ERROR, str(e), {"budget": budget}, t0, impl_ref, budget)
    ok, _ = separates(case.X, case.y, r.w)
    extra = {"k": r.updates, "bound": None, "ratio": None, "budget": budget, "passes": r.passes,
             "converged": r.converged, "n": int(case.X.shape[0]), "d": int(case.X.shape[1])}
    if ok:  # the certificate says this is impossible: the harness built a separable case
        return _verdict(NONSEPARABLE, impl, case, REFERENCE_MISMATCH,
                        "the final w separates data built to be non-separable: a harness bug", extra, t0)
    problems = []
    if r.converged:
        problems.append(f"claims convergence after {r.updates} updates on non-separable data "
                        f"(its final w misclassifies a sample)")
    if r.passes is not None and not r.converged and r.passes != budget:
        problems.append(f"stopped after {r.passes} of {budget} passes without converging")
    if not r.converged and r.updates < budget:
        problems.append(f"only {r.updates} updates in {budget} passes: every pass over non-separable "
                        f"data has a mistake")
    msg = "; ".join(problems) or (f"did not converge within {budget} passes ({r.updates} updates), "
                                  f"as it must: the data are not linearly separable")
    return _verdict(NONSEPARABLE, impl, case, FAILED if problems else PASSED, msg, extra, t0, impl_ref, budget)


def invariance_cases():
    from hypothesis import strategies as st
    return st.tuples(ps.separable_data(), st.sampled_from([j for j in range(-8, 9) if j]))


# name -> (strategy factory, check): the user-facing tests and the mutant meta-test share these
PROPERTIES = {
    BOUND: (ps.separable_data, check_bound),
    TIGHT: (ps.unit_vectors, check_bound),
    INVARIANCE: (invariance_cases, check_invariance),
    NONSEPARABLE: (ps.nonseparable_data, check_nonseparable),
}


def perceptron_undeclared(impl) -> str | None:
    """Why the perceptron properties cannot run on impl (the capabilities gate), or None."""
    caps = getattr(impl, "capabilities", None)
    if caps is None:
        return "perceptron (no capabilities)"
    return caps.supports("perceptron") or (None if callable(getattr(impl, "perceptron", None))
                                           else "perceptron (declared, but no perceptron() method)")
