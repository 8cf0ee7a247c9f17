"""The gradient checks on one real-size network (`backcheck check --network ...`): the same
checks as properties.checks, with the reference at scale (reference.structured_fd: exact
shapes, every finite-difference cost from a few batched operations per layer), plus two modes
for networks where even that is too much:

    sampled_fd   Richardson differences on a stratified random subset: every layer's W and b
                 are strata, each sampled uniformly at the same fraction (at least LEAST_PER_STRATUM
                 entries, all of a small stratum). A single wrong entry is found and located
                 exactly when it is drawn, so it is missed with probability 1 - m/n in its stratum
                 of n entries with m drawn: stated per stratum, for the least-sampled one and for
                 an entry at a uniformly random position.
    directional  vᵀ∇C along K random directions v of ±1/√P entries (Rademacher, ‖v‖ = 1), each
                 against a 1-d central difference under its own error estimate plus |v|·tol (the
                 gradient's error-model bound along v; the step is scaled by 1/‖v‖). Every entry
                 of v has the same size 1/√P, so a single entry wrong by e moves vᵀG by e/√P in
                 every direction: it is caught with certainty once e > 2√P·tol_k in some
                 direction (the factor 2: the difference's and the correct gradient's errors may
                 eat up to one bound), and missed below that. Two wrong entries cancel in one
                 direction with probability <= 1/2: in all K with probability <= 2^-K.

Every verdict says how much it checked; the sampled and directional ones state their
probability of missing a single wrong entry in `extra` and in the message.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from properties import checks
from properties.checks import Case, Context
from reference import fd, structured_fd
from reference.compare import compare, entry_of, relative_bound
from reference.verdict import NOT_CHECKABLE, Entry, Verdict

SAMPLE_FRACTION = 0.1
LEAST_PER_STRATUM = 16
DIRECTIONS = 8
# the gradient checks of properties.checks that run unchanged on the structured reference
# ("directional" is replaced by the multi-direction check below)
SHARED_CHECKS = ("vs_jax", "vs_fd", "richardson", "slide_fd", "intermediates", "reference_agreement")
FULL_FD = ("vs_fd", "richardson", "slide_fd", "reference_agreement")   # one cost pair per entry or more
MODES = {  # --fd: which finite-difference checks run besides vs_jax and intermediates
    "full": SHARED_CHECKS + ("sampled_fd", "directional"),
    "sampled": ("vs_jax", "intermediates", "sampled_fd", "directional"),
    "directional": ("vs_jax", "intermediates", "directional"),
}


@dataclass
class NetworkCase(Case):
    """A case given on the command line; its reproducer is that command (a real-size network's
    parameters printed as Python would be megabytes)."""
    command: str = ""

    @classmethod
    def make(cls, spec, params, X, Y, label: str = "", direction_seed: int = 0, command: str = "") -> "NetworkCase":
        case = super().make(spec, params, X, Y, label, direction_seed)
        case.command = command
        return case

    def reproducer(self, impl_ref: str, check: str) -> str:
        return f"{self.command} --impl {impl_ref}" if self.command else ""


class ScaleContext(Context):
    """properties.checks.Context with the reference at scale: the same error model and checks,
    gradients and perturbed costs from reference.structured_fd instead of padded buckets."""

    @cached_property
    def network(self) -> structured_fd.Network:
        c = self.case
        # persist: a real-size network is checked again and again; its programs are kept on disk
        return structured_fd.Network(self.spec, c.params, c.X, c.Y, persist=True)

    @cached_property
    def ref(self):
        return self.network.gradients()

    @cached_property
    def packed(self):
        return self.network   # the shared checks read only `.theta` from it

    def costs(self, idx, values):
        return self.network.costs(idx, values)


# --- sampled ---------------------------------------------------------------------------

def strata(spec) -> list[tuple[int, str, int, int]]:
    """(layer, 'W' or 'b', start, stop) of every parameter array in the flat order."""
    out, start = [], 0
    for j, (ws, bs) in enumerate(spec.shapes(), start=1):
        for name, size in (("W", ws[0] * ws[1]), ("b", bs[0])):
            out.append((j, name, start, start + size))
            start += size
    return out


def stratified_sample(spec, fraction: float, seed: int, least: int = LEAST_PER_STRATUM):
    """Flat indices drawn uniformly without replacement in every stratum, and per stratum
    (layer, param, entries, drawn, miss probability of a single wrong entry there)."""
    rng = np.random.default_rng(seed)
    picked, rows = [], []
    for layer, param, start, stop in strata(spec):
        n = stop - start
        m = min(n, max(least, math.ceil(fraction * n)))
        picked.append(start + np.sort(rng.choice(n, m, replace=False)))
        rows.append({"layer": layer, "param": param, "entries": n, "sampled": m, "miss_probability": 1 - m / n})
    return np.concatenate(picked), rows


def check_sampled(ctx: ScaleContext, fraction: float = SAMPLE_FRACTION, seed: int | None = None) -> Verdict:
    _, g = ctx.impl_result
    seed = ctx.case.direction_seed if seed is None else seed
    idx, rows = stratified_sample(ctx.spec, fraction, seed)
    tol = ctx.tolerances[0][idx]
    r = fd.richardson_checker(lambda i, v: ctx.costs(idx[i], v), ctx.spec, ctx.packed.theta[idx], g[idx],
                              ctx.cost_error, scale=ctx.scale, analytic_error=tol)
    worst = max(rows, key=lambda s: s["miss_probability"])
    uniform = 1 - idx.size / g.size
    where = f"layer {worst['layer']} {worst['param']}"
    message = (f"sampled {idx.size:,} of {g.size:,} entries (every layer's W and b, fraction {fraction:g}): "
               f"a single entry wrong by more than twice its bound is missed with probability "
               f"{worst['miss_probability']:.3g} in the least-sampled {where}, {uniform:.3g} at a uniformly random position")
    v = compare("sampled_fd", ctx.spec, g[idx], r.numerical, relative_bound(r.error_estimate + tol, g[idx], r.numerical),
                kinks=r.kinks | ctx.kink_entries[idx], entry=lambda s, i: entry_of(s, int(idx[i])),
                message=message, **ctx.verdict_fields())
    v.extra.update(mode="sampled", fraction=fraction, seed=seed, strata=rows, sampled=int(idx.size),
                   miss_probability=worst["miss_probability"], miss_probability_uniform=uniform)
    return v


# --- directional -------------------------------------------------------------------------

def rademacher(rng, size: int) -> np.ndarray:
    """A random direction of ±1/√size entries (unit norm, every entry the same weight)."""
    return rng.choice((-1.0, 1.0), size) / math.sqrt(size)


def check_directions(ctx: ScaleContext, k: int = DIRECTIONS) -> Verdict:
    _, g = ctx.impl_result
    theta, tol = ctx.packed.theta, ctx.tolerances[0]
    rng = np.random.default_rng(ctx.case.direction_seed)
    G, D, bound, crossed = [], [], [], []
    for _ in range(k):
        v = rademacher(rng, g.size)
        analytic = float(np.abs(v) @ tol)
        d, gv, est, cr, _ = fd.directional_check(lambda ts: ctx.network.direction_costs(v, ts), theta, g, v,
                                                 ctx.cost_error, scale=ctx.scale, analytic_error=analytic)
        G.append(gv), D.append(d), bound.append(est + analytic), crossed.append(cr)
    G, D, bound, crossed = map(np.asarray, (G, D, bound, crossed))
    live = ~crossed
    v = compare("directional", ctx.spec, G, D, relative_bound(bound, G, D), kinks=crossed,
                entry=lambda s, i: Entry(0, "direction", (int(i),)), **ctx.verdict_fields())
    if ctx.kink_entries.any():
        v.n_kinks, v.status = int(ctx.kink_entries.sum()), NOT_CHECKABLE
        v.message = "the network sits exactly on a kink: the directional derivative is one-sided"
    threshold = 2 * math.sqrt(g.size) * float(bound[live].min()) if live.any() else math.inf
    largest = float(np.max(np.abs(g))) if g.size else 0.0
    relative = threshold / largest if largest > 0 else math.inf
    said = (f"{k} random ±1/√P directions ({int(live.sum())} clear of kinks): a single entry wrong by more than "
            f"{threshold:.3g} ({relative:.3g} of the largest gradient entry) is caught with certainty "
            f"(miss probability 0), a smaller error can be missed; two wrong entries cancel in every "
            f"direction with probability <= 2^-{k}") if live.any() else (
            f"every one of the {k} random directions crosses a kink: nothing decided, a wrong entry is missed "
            f"(miss probability 1)")
    v.message = f"{v.message}; {said}" if v.message else said
    v.extra.update(mode="directional", directions=k, miss_probability=0.0 if live.any() else 1.0,
                   for_single_errors_above=threshold, relative_to_largest_entry=relative,
                   pair_cancellation_probability=2.0 ** -k)
    return v


SCALE_CHECKS = {"sampled_fd": check_sampled, "directional": check_directions}


def run_check(ctx: ScaleContext, check: str, **options) -> Verdict:
    """One check on the structured reference; the shared ones through properties.checks.run_check,
    the two modes above with the same handling (plug-in errors, confirmed failures, timing)."""
    return checks.run_check(ctx, check, SCALE_CHECKS.get(check), **options)


def run_checks(impl, case: Case, checks=MODES["full"], impl_ref: str | None = None,
               fraction: float = SAMPLE_FRACTION, directions: int = DIRECTIONS) -> list[Verdict]:
    """The named checks (default: every one, MODES["full"]) on one case, sharing one context."""
    ctx = ScaleContext(impl, case, impl_ref)
    options = {"sampled_fd": {"fraction": fraction}, "directional": {"k": directions}}
    return [run_check(ctx, c, **options.get(c, {})) for c in checks]
