"""Finite-difference gradient checkers: small pure functions of a batched cost evaluator.

Every checker takes `costs(idx, values) -> (C, crossed)`: the cost with flat parameter idx[i] set
to values[i], for all i at once, and whether that perturbation moved a unit across a kink
(`reference.jax_ref.perturbed_costs` gives one; any callable of that shape works). They return
an `FDResult`: per-entry numerical gradients, relative errors against the analytic gradient,
and a Verdict.

Error model of a central difference D(h) = (C(θ+h) - C(θ-h)) / 2h (float64 cost):
    truncation  ≈ h² |C'''| / 6                (estimated from D(h) - D(2h) = 3 * truncation(h))
    rounding    ≤ e_C / h                      (e_C: error of one cost evaluation, `cost_rounding`)
The step minimizing their sum is h ~ (3 e_C / |C'''|)^(1/3) ~ u^(1/3) times the cost's scale in
that parameter, which is where `default_step` puts it: h = u^(1/3) * max(|θ_i|, scale).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from reference.compare import compare, relative_bound
from reference.spec import NetworkSpec
from reference.verdict import Verdict

U64 = np.finfo(np.float64).eps / 2          # unit roundoff of the float64 cost
TRUNCATION_SAFETY = 4.0                      # the h² law is asymptotic: cover the next terms


@dataclass
class FDResult:
    numerical: np.ndarray      # per-entry numerical gradient
    rel_error: np.ndarray      # per-entry |A - G| / max(|A| + |G|, floor)
    error_estimate: np.ndarray | None  # per-entry absolute error estimate of `numerical`
    kinks: np.ndarray          # entries whose stencil crosses a kink
    undecided: np.ndarray      # entries the checker cannot decide
    make_verdict: Callable[[], Verdict] = field(repr=False)

    @cached_property
    def verdict(self) -> Verdict:
        """The checker's own verdict, built on first use: a caller that compares the numerical
        gradient under its own bound (properties.checks) never pays for it."""
        return self.make_verdict()


def cost_rounding(cost: float, output_sensitivity: float, depth: int) -> float:
    """e_C, a bound on the float64 error of one cost evaluation: each of the depth + 2 stages
    (layers, loss, mean) contributes a few roundings relative to the magnitudes flowing through;
    a relative error r in the outputs moves C by r * sum|y dC/dy| (the output sensitivity)."""
    return U64 * (4 * depth + 8) * (abs(cost) + output_sensitivity)


def default_step(theta: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Absolute step per entry: u^(1/3) times the parameter's magnitude (at least `scale`)."""
    return np.cbrt(U64) * np.maximum(np.abs(theta), scale)


def _steps(theta, h):
    """Actual representable steps: (θ + h) - θ is exact, so divide by that, not by h."""
    plus, minus = theta + h, theta - h
    return plus, minus, plus - theta, theta - minus


def central_differences(costs: Callable, theta: np.ndarray, steps: list, idx=None):
    """D(h) per entry for each step array h in `steps`, all cost evaluations (2 per entry and
    step) in one batched call, and whether any stencil of an entry crossed a kink."""
    idx = np.arange(theta.size) if idx is None else np.asarray(idx)
    t = theta[idx]
    pts, dens = [], []
    for h in steps:
        h = np.broadcast_to(h, theta.shape)[idx]
        plus, minus = t + h, t - h
        pts += [plus, minus]
        dens.append((plus - t) + (t - minus))  # the representable step, not h
    c, crossed = costs(np.tile(idx, 2 * len(steps)), np.concatenate(pts))
    n = idx.size
    c, crossed = c.reshape(-1, n), crossed.reshape(-1, n)
    Ds = [(c[2 * k] - c[2 * k + 1]) / dens[k] for k in range(len(steps))]
    return Ds, crossed.any(axis=0)


def central_difference(costs: Callable, theta: np.ndarray, h, idx=None):
    """D(h) per entry and whether its stencil crossed a kink (2 cost evaluations per entry)."""
    (D,), crossed = central_differences(costs, theta, [h], idx)
    return D, crossed


def central_checker(costs, spec: NetworkSpec | None, theta, grad, cost_error: float, *,
                    scale: float = 1.0, floor: float = 0.0, analytic_error=0.0, check: str = "vs_fd",
                    **fields) -> FDResult:
    """Central differences over all parameters (weights and biases) at h = default_step, with a
    per-entry error estimate truncation + rounding; an entry passes if
    |D - G| <= estimate + analytic_error (the analytic gradient's own error bound)."""
    theta, grad = np.asarray(theta, np.float64), np.asarray(grad, np.float64)
    h = default_step(theta, scale)
    (D, D2), crossed = central_differences(costs, theta, [h, 2 * h])
    trunc = TRUNCATION_SAFETY * np.abs(D - D2) / 3
    est = trunc + 1.5 * cost_error / h          # D(2h)'s noise leaks into trunc: counted there
    return _verdict(check, spec, D, grad, est, analytic_error, floor, crossed, None, fields)


def richardson_checker(costs, spec: NetworkSpec | None, theta, grad, cost_error: float, *,
                       scale: float = 1.0, floor: float = 0.0, analytic_error=0.0,
                       check: str = "richardson", **fields) -> FDResult:
    """Richardson extrapolation R = (4 D(h/2) - D(h)) / 3, error O(h⁴), at h = u^(1/5) * scale
    (its optimal step). Error estimate per entry: TRUNCATION_SAFETY |R - D(h/2)| (the error of
    the cruder D(h/2), which bounds R's when the expansion converges) plus R's rounding,
    (4*2 + 1)/3 e_C / h."""
    theta, grad = np.asarray(theta, np.float64), np.asarray(grad, np.float64)
    h = U64 ** 0.2 * np.maximum(np.abs(theta), scale)
    (Dh, Dh2), crossed = central_differences(costs, theta, [h, h / 2])
    R = (4 * Dh2 - Dh) / 3
    # the h⁴ law is asymptotic too, and Richardson's step is 10x the central one: a saturating
    # unit can leave the asymptotic range (seen: 1.5x the bare estimate), so the same safety
    est = TRUNCATION_SAFETY * np.abs(R - Dh2) + 3 * cost_error / h
    # ... and where R is still off by more, the step may not be in the asymptotic range at all:
    # a unit saturating between h/2 and h makes D(h) and D(h/2) agree by accident while both are
    # off (seen: 20% off with a 0.6% estimate, deep relu-tanh networks at weight scale 10). The
    # next extrapolation from (h/2, h/4) tells: in the asymptotic range R moves by less than its
    # own estimate, so only such entries can change, and only they pay for the extra step.
    # Then the estimate is also at least the change, |R - R2| (plus R2's rounding, 6 e_C / h).
    off = ~crossed & ~(np.abs(R - grad) <= est + analytic_error)
    if off.any():
        i = np.flatnonzero(off)
        (Dh4,), crossed4 = central_differences(costs, theta, [h / 4], i)
        R2 = (4 * Dh4 - Dh2[i]) / 3
        est[i] = np.maximum(est[i], TRUNCATION_SAFETY * np.abs(R[i] - R2) + 6 * cost_error / h[i])
        crossed[i] |= crossed4
    return _verdict(check, spec, R, grad, est, analytic_error, floor, crossed, None, fields)


def slide_checker(costs, spec: NetworkSpec | None, theta, grad, weight_mask, *, eps: float = 1e-6,
                  delta=1e-6, unresolved=None, check: str = "slide_fd", **fields) -> FDResult:
    """The course slides' checker, faithfully (seed 000, "Bonus: verifying that gradients are
    correctly computed"): for every *weight* ω, C± at ω(1 ± ε), A = (C⁺ - C⁻) / (2εω), and
    assert |A - G| / (|A| + |G|) <= δ. Biases are not checked (the slides loop over Ω only).

    Where it cannot decide, it says so per entry instead of dividing by zero or passing
    silently: ω = 0 (the perturbation is zero, A = 0/0) and A = G = 0 (0/0 in the verdict).
    `unresolved` (per weight, optional) marks entries the caller's error model says the step
    ε|ω| cannot resolve (expected error as large as the derivative): undecided too."""
    theta, grad = np.asarray(theta, np.float64), np.asarray(grad, np.float64)
    widx = np.flatnonzero(weight_mask)
    w = theta[widx]
    c, crossed = costs(np.concatenate([widx, widx]), np.concatenate([w * (1 + eps), w * (1 - eps)]))
    m = widx.size
    with np.errstate(divide="ignore", invalid="ignore"):
        A = (c[:m] - c[m:]) / (2 * eps * w)
    G = grad[widx]
    zero_division = (w == 0) | ((A == 0) & (G == 0))
    undecided = zero_division if unresolved is None else zero_division | unresolved
    A = np.where(w == 0, np.nan, A)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(A - G) / (np.abs(A) + np.abs(G))
    m_crossed = crossed[:m] | crossed[m:]

    def verdict() -> Verdict:
        # the implementation's G first: a verdict's values read (implementation, reference)
        v = compare(check, spec, G, np.where(undecided, 0, A), delta, 0.0, kinks=m_crossed,
                    undecided=undecided, entry=lambda s, i: _entry(s, widx[i]), **fields)
        v.message = slide_undecided_message(v.message, zero_division, undecided, m_crossed)
        return v
    full = np.full(theta.size, np.nan)
    full[widx] = A
    rel_full = np.full(theta.size, np.nan)
    rel_full[widx] = rel
    return FDResult(full, rel_full, None, _scatter(m_crossed, widx, theta.size),
                    _scatter(undecided, widx, theta.size), verdict)


def slide_undecided_message(message: str, zero_division, undecided, kinks) -> str:
    """Why the slides' checker left weights undecided, counted after kink entries are taken out
    (a kink entry is reported as a kink, not as undecided)."""
    zero = int(np.count_nonzero(zero_division & ~kinks))
    unresolved = int(np.count_nonzero(undecided & ~zero_division & ~kinks))
    why = []
    if zero:
        why.append(f"{zero} with ω = 0 or A = G = 0 (the slide formula divides by zero)")
    if unresolved:
        why.append(f"{unresolved} whose step ε|ω| is too small to resolve the derivative")
    if not why:
        return message
    return (message + "; " if message else "") + "undecided weights: " + ", ".join(why)


DIRECTIONAL_STEPS = (1.0, 1 / 8, 1 / 64)


def directional_check(dcosts, theta, grad, direction, cost_error: float, *, scale: float = 1.0,
                      analytic_error: float = 0.0, check: str = "directional", spec=None, **fields):
    """vᵀ∇C against a one-dimensional central difference along v (fast mode: a dozen cost
    evaluations, in one call, whatever the number of parameters). `dcosts(ts) -> (C, crossed)`
    evaluates C(θ + t v). The default step and two shorter ones (DIRECTIONAL_STEPS) are evaluated
    together, and the one with the smallest error estimate among those whose stencil crosses no
    kink is taken: one stencil is all the check has, and a kink a step away or a unit saturating
    within it would otherwise leave the whole check undecided.
    Returns (numerical, analytic, estimate, crossed, Verdict)."""
    v = np.asarray(direction, np.float64)
    h0 = np.cbrt(U64) * max(scale, float(np.max(np.abs(theta))) if theta.size else 1.0) / max(np.linalg.norm(v), 1e-300)
    steps = h0 * np.asarray(DIRECTIONAL_STEPS)
    c, crossed = dcosts(np.concatenate([[h, -h, 2 * h, -2 * h] for h in steps]))
    c, crossed = np.asarray(c).reshape(-1, 4), np.asarray(crossed).reshape(-1, 4).any(axis=1)
    D = (c[:, 0] - c[:, 1]) / (2 * steps)
    est = TRUNCATION_SAFETY * np.abs(D - (c[:, 2] - c[:, 3]) / (4 * steps)) / 3 + 1.5 * cost_error / steps
    k = int(np.argmin(np.where(crossed, np.inf, est))) if not crossed.all() else 0
    D, est, crossed = float(D[k]), float(est[k]), bool(crossed[k])
    G = float(np.dot(v, grad))
    tol = est + analytic_error
    denom = max(abs(D) + abs(G), 1e-300)
    verdict = compare(check, spec, [G], [D], tol / denom, kinks=[crossed],
                      entry=lambda s, i: _dir_entry(), **fields)
    return D, G, est, crossed, verdict


def _verdict(check, spec, D, grad, est, analytic_error, floor, crossed, undecided, fields) -> FDResult:
    rel = relative_bound(np.abs(D - grad), D, grad)

    def verdict() -> Verdict:
        return compare(check, spec, grad, D, relative_bound(est + analytic_error, D, grad), floor, kinks=crossed,
                       undecided=undecided, **fields)
    return FDResult(D, rel, est, crossed, np.zeros(D.shape, bool) if undecided is None else undecided, verdict)


def _entry(spec, i):
    from reference.compare import entry_of
    return entry_of(spec, int(i))


def _dir_entry():
    from reference.verdict import Entry
    return Entry(0, "direction", ())   # not a parameter: printed "the direction v"


def _scatter(vals, idx, n):
    out = np.zeros(n, bool)
    out[idx] = vals
    return out


def weight_mask(spec: NetworkSpec) -> np.ndarray:
    """True at the flat positions of weights (not biases)."""
    return np.concatenate([np.concatenate([np.ones(w[0] * w[1], bool), np.zeros(b[0], bool)])
                           for w, b in spec.shapes()])
