"""The central-difference step-size curve for one sample network (the report's V-shaped plot).

A central difference (C(θ+h) − C(θ−h)) / 2h has truncation error ~ h² |C'''| / 6 and rounding
error ~ ε |C| / h, so its error against the exact gradient falls as h² for large steps, rises
as 1/h for small ones, and bottoms out near h ~ ε^(1/3). We measure it, not model it: every
parameter of a small smooth network is perturbed at each step and compared with JAX's exact
float64 gradient. The result is plain JSON (it is stored in the results' meta["step_curve"])
so `backcheck report` redraws the plot without recomputing it.
"""
from __future__ import annotations

import numpy as np

from reference import jax_ref
from reference.compare import relative_errors
from reference.fd import central_difference, default_step
from reference.spec import NetworkSpec, flatten, init_params, mlp, random_batch

# Steps relative to max(1, |θ|): 10^-1 .. 10^-13 in half decades.
STEPS = tuple(10.0 ** (-e / 2) for e in range(2, 27))
# Entries whose exact gradient is below this (relative to the largest) are left out of the
# relative error: there the ratio measures nothing but the size of the denominator.
_NEGLIGIBLE = 1e-6


def sample_network() -> tuple[NetworkSpec, list, np.ndarray, np.ndarray]:
    """A small smooth network (no kinks, so the curve shows only truncation and rounding)."""
    spec = mlp(3, [4, 2], ["tanh", "identity"], "mse")
    rng = np.random.default_rng(7)
    params = init_params(spec, rng)
    X, Y = random_batch(spec, rng, 5)
    return spec, params, X, Y


def step_curve(spec: NetworkSpec | None = None, params=None, X=None, Y=None,
               steps=STEPS) -> dict:
    """Median and worst relative error of the central difference over all parameters, per step.

    The step of entry i is s * max(|θ_i|, 1) for each relative step s, the scaling the checker's
    `reference.fd.default_step` uses, and the error is the checkers' own
    `reference.compare.relative_errors`. Returns {"network", "dtype", "n_params", "n_compared",
    "points": [[s, median, max], ...], "chosen_step", "best_step"}."""
    if spec is None:
        spec, params, X, Y = sample_network()
    packed = jax_ref.pack(spec, params, X, Y)
    exact = jax_ref.gradients(spec, params, X, Y).flat
    theta = flatten(params).astype(np.float64)
    scale = np.maximum(np.abs(theta), 1.0)
    keep = np.abs(exact) > _NEGLIGIBLE * np.max(np.abs(exact))

    def costs(idx, values):
        return jax_ref.perturbed_costs(packed, idx, values)

    points = []
    for s in steps:
        D, _crossed = central_difference(costs, theta, s * scale)  # smooth network: never crosses a kink
        rel = relative_errors(D[keep], exact[keep])
        points.append([float(s), float(np.median(rel)), float(np.max(rel))])
    best = min(points, key=lambda p: p[1])[0]
    return {
        "network": spec.describe(), "dtype": "float64", "n_params": int(theta.size),
        "n_compared": int(keep.sum()), "points": points,
        "chosen_step": float(np.median(default_step(theta) / scale)), "best_step": best,
    }
