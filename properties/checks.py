"""The gradient checks: an implementation on one case, against both references, under the error
model. Pure functions of (implementation, case) -> Verdict; pytest and Hypothesis call them.

    vs_jax              cost and every gradient entry against JAX autodiff
    vs_fd               against central differences of the reference cost (all parameters)
    richardson          against Richardson-extrapolated central differences
    slide_fd            the course slides' checker, faithfully (weights only)
    directional         vᵀ∇C against a 1-d central difference along a random v (fast mode)
    intermediates       per-layer deltas dC/dz against JAX's (where the implementation exposes them)
    reference_agreement JAX against finite differences: the references agree with each other,
                        else the harness is wrong (reported as reference_mismatch, not a failure)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from properties import errormodel
from reference import fd, jax_ref, programs
from reference.compare import VACUOUS_BOUND, compare, entry_of, relative_bound
from reference.spec import NetworkSpec, flatten
from implementations.errors import PluginError
from reference.verdict import FAILED, NOT_CHECKABLE, PASSED, REFERENCE_MISMATCH, Entry, Verdict

GRADIENT_CHECKS = ("vs_jax", "vs_fd", "richardson", "slide_fd", "directional", "intermediates",
                   "reference_agreement")
SLIDE_EPS = 1e-6


@dataclass
class Case:
    """A network spec, its parameters and a batch (in the spec's dtype)."""
    spec: NetworkSpec
    params: list
    X: np.ndarray
    Y: np.ndarray
    label: str = ""
    direction_seed: int = 0

    @classmethod
    def make(cls, spec: NetworkSpec, params, X, Y, label: str = "", direction_seed: int = 0) -> "Case":
        dt = np.dtype(spec.dtype)
        return cls(spec, [(np.asarray(W, dt), np.asarray(b, dt)) for W, b in params],
                   np.asarray(X, dt), np.asarray(Y, dt), label, direction_seed)

    def describe(self) -> str:
        return (self.label + ": " if self.label else "") + f"{self.spec.describe()}, N={self.X.shape[0]}"

    def reproducer(self, impl_ref: str, check: str) -> str:
        """Python lines that rebuild this case and rerun the check (printed with failures)."""
        np.set_printoptions(precision=17, threshold=1 << 30, linewidth=1 << 30)
        try:
            arr = lambda a: f"np.array({a.tolist()!r}, dtype=np.{a.dtype})"  # noqa: E731
            params = ", ".join(f"({arr(W)}, {arr(b)})" for W, b in self.params)
            return "\n".join([
                "import numpy as np",
                "from reference.spec import NetworkSpec, Layer",
                "from properties.checks import Case, reproduce",
                f"spec = {self.spec.repr_code()}",
                f"params = [{params}]",
                f"X = {arr(self.X)}",
                f"Y = {arr(self.Y)}",
                f"print(reproduce({impl_ref!r}, {check!r}, Case.make(spec, params, X, Y, "
                f"direction_seed={self.direction_seed})).explain())",
            ])
        finally:
            np.set_printoptions()


def models_of(cases: list) -> list[tuple]:
    """Context.models of each of `cases` (one spec and batch size: the draws of one example) in
    one pass per dtype (errormodel.model_many: each case's models are the ones it gets alone)."""
    spec = cases[0].spec
    args = ([c.params for c in cases], [c.X for c in cases], [c.Y for c in cases])
    impl = errormodel.model_many(spec, *args, spec.dtype)
    ref = impl if spec.dtype == "float64" else errormodel.model_many(spec, *args, "float64")
    return list(zip(impl, ref))


_WRAPPERS: dict = {}


def _validated(impl, impl_ref):
    """One long-lived validating wrapper per raw implementation object (the wrapper samples
    determinism every few calls: a fresh one per case would double every call)."""
    from implementations.validate import Validated
    key = (id(impl), impl_ref)
    if key not in _WRAPPERS:
        _WRAPPERS[key] = (impl, Validated(impl, impl_ref))  # keeps impl alive: its id stays unique
    return _WRAPPERS[key][1]


class Context:
    """Everything the checks of one (implementation, case) share, computed on first use."""

    def __init__(self, impl, case: Case, impl_ref: str | None = None):
        if impl is not None and not hasattr(impl, "submit_gradients"):
            impl = _validated(impl, impl_ref)  # every call validated, wrapped or not
        programs.adopt()   # optimized builds finished since the last case: between cases, never inside one
        self.impl, self.case, self.spec = impl, case, case.spec
        from implementations.registry import absolute_source
        # reproducers name the implementation so that they run from any folder
        self.impl_ref = absolute_source(impl_ref or getattr(impl, "source", None) or "builtin")
        # start the (possibly isolated) call now: the reference is computed while it runs
        self._pending = None if impl is None else impl.submit_gradients(
            case.spec, case.params, case.X, case.Y)
        self._fetched: dict = {}           # reference evaluations made for it in a shared call (run_many)
        self._collecting = False           # while run_many collects requests: one missing raises _Wanted
        self.used_shared = False           # whether a check here used a shared call's result

    @cached_property
    def ref(self) -> jax_ref.ReferenceResult:
        return jax_ref.gradients_packed(self.packed)

    @cached_property
    def packed(self) -> jax_ref.Packed:
        return jax_ref.pack(self.spec, self.case.params, self.case.X, self.case.Y)

    @cached_property
    def impl_result(self):
        """(cost, flat gradient) of the implementation, validated (implementations.validate);
        PluginError if it raised, hung, crashed or returned something unusable."""
        cost, grads = self._pending.result()
        return float(cost), flatten(grads).astype(np.float64)

    @cached_property
    def models(self) -> tuple:
        """The error models (properties.errormodel) of the implementation's dtype and of the
        float64 reference (the same object for a float64 spec)."""
        return models_of([self.case])[0]

    @cached_property
    def tolerances(self):
        impl, ref = self.models
        return impl.tol, ref.tol, impl.A, impl.delta_tol, ref.delta_tol

    @cached_property
    def output_sensitivity(self) -> float:
        """How the outputs' forward error moves the cost (errormodel.output_sensitivity)."""
        return errormodel.output_sensitivity(self.models[1].zfwd_out, errormodel.output_deltas(self.ref),
                                             self.ref.loss_cancellation)

    @cached_property
    def cost_tolerance(self) -> float:
        """How far the implementation's cost may be from the reference's: both computations'
        bounds (the implementation's dtype and the float64 reference)."""
        n = self.case.X.shape[0]
        return sum(errormodel.cost_tolerance(self.spec, self.ref.cost, self.output_sensitivity, n, d)
                   for d in (self.spec.dtype, "float64"))

    @cached_property
    def cost_error(self) -> float:
        return errormodel.reference_cost_error(self.spec, self.models[1].zfwd_out, self.ref)

    def costs(self, idx, values):
        return jax_ref.perturbed_costs(self.packed, idx, values)

    def direction_costs(self, v, ts):
        """Costs along v at the points ts (jax_ref.direction_costs), from a shared call if
        run_many made one for this context."""
        key = ("directional", v.tobytes(), np.asarray(ts, np.float64).tobytes())
        if key in self._fetched:
            self.used_shared = True
            return self._fetched.pop(key)
        if self._collecting:
            raise _Wanted(key, (self.packed, v, ts))
        return jax_ref.direction_costs(self.packed, v, ts)

    @cached_property
    def scale(self) -> float:
        """Step scale for parameters near zero: the RMS parameter magnitude, at least 1e-3."""
        th = self.packed.theta
        return max(float(np.sqrt(np.mean(th * th))) if th.size else 1.0, 1e-3)

    @cached_property
    def central(self) -> fd.FDResult:
        """Central differences of the reference cost, compared with JAX (reference agreement)."""
        tol_ref = self.tolerances[1]
        return fd.central_checker(self.costs, self.spec, self.packed.theta, self.ref.flat, self.cost_error,
                                  scale=self.scale, analytic_error=tol_ref, check="reference_agreement",
                                  fail_status=REFERENCE_MISMATCH)

    @cached_property
    def kink_entries(self) -> np.ndarray:
        """Entries whose gradient depends on which one-sided derivative is taken at a unit
        sitting exactly on a kink (seed 004's XOR sits on the ReLU kink)."""
        if not self.ref.on_kink:
            return np.zeros(self.ref.flat.shape, bool)
        differ = self.ref.flat != self.ref.flat_other_side
        if self.ref.on_kink == 1:
            return differ
        # two or more units on kinks: a correct implementation may take the left side at one and
        # the right at another, and the all-left and all-right gradients can agree where such a
        # mixed choice does not (two perceptron terms with opposite labels and equal inputs: 0 + 0
        # = -t1 h - t2 h, and a mixed choice gives ±h, with or without λW beside it): every entry
        # a unit on a kink reaches is a kink entry (errormodel.kink_reach)
        jumps = [o - d for o, d in zip(self.ref.deltas_other_side, self.ref.deltas)]
        return differ | errormodel.kink_reach(self.spec, self.case.params, self.case.X, jumps)

    @cached_property
    def recheck(self):
        """The implementation asked once more on the same inputs: the non-deterministic PluginError
        if its answer moved beyond reassociation (implementations.validate.recheck), else None.
        Made only when a check failed, once per case however many checks failed."""
        recheck = getattr(self.impl, "recheck_gradients", None)
        c = self.case
        return None if recheck is None else recheck(c.spec, c.params, c.X, c.Y, self._pending.result())

    def verdict_fields(self) -> dict:
        return dict(implementation=getattr(self.impl, "name", str(self.impl)))


# --- the checks --------------------------------------------------------------------------

def _cost_and_params_entry(spec, i):
    return Entry(0, "cost", ()) if i == 0 else entry_of(spec, i - 1)


def check_vs_jax(ctx: Context) -> Verdict:
    cost, g = ctx.impl_result
    tol_impl, tol_ref, *_ = ctx.tolerances
    ctol = ctx.cost_tolerance
    a = np.concatenate([[cost], g])
    b = np.concatenate([[ctx.ref.cost], ctx.ref.flat])
    tol = np.concatenate([[ctol], tol_impl + tol_ref])
    kinks = np.concatenate([[False], ctx.kink_entries])
    return compare("vs_jax", ctx.spec, a, b, _relative(tol, a, b), kinks=kinks,
                   entry=_cost_and_params_entry, **ctx.verdict_fields())


def check_vs_fd(ctx: Context) -> Verdict:
    _, g = ctx.impl_result
    c = ctx.central
    tol = c.error_estimate + ctx.tolerances[0]
    return compare("vs_fd", ctx.spec, g, c.numerical, _relative(tol, g, c.numerical),
                   kinks=c.kinks | ctx.kink_entries, **ctx.verdict_fields())


def check_richardson(ctx: Context) -> Verdict:
    _, g = ctx.impl_result
    r = fd.richardson_checker(ctx.costs, ctx.spec, ctx.packed.theta, g, ctx.cost_error, scale=ctx.scale,
                              analytic_error=ctx.tolerances[0], **ctx.verdict_fields())
    v = r.verdict
    if ctx.kink_entries.any():
        v = compare("richardson", ctx.spec, g, r.numerical, _relative(r.error_estimate + ctx.tolerances[0], g,
                    r.numerical), kinks=r.kinks | ctx.kink_entries, **ctx.verdict_fields())
    return v


def check_slide(ctx: Context, eps: float = SLIDE_EPS) -> Verdict:
    """The slides' checker with δ per weight from the error model: its step is h = ε|ω|, so its
    truncation is the central checker's scaled by (ε|ω| / h_central)², its rounding e_C / (ε|ω|).
    Where that expected error is as large as the derivative itself (δ >= 1/2), the slides'
    checker cannot resolve the entry at its step: undecided, with the reason, never failed."""
    _, g = ctx.impl_result
    theta, c = ctx.packed.theta, ctx.central
    h = fd.default_step(theta, ctx.scale)
    trunc = (c.error_estimate - 1.5 * ctx.cost_error / h) * (eps * np.abs(theta) / h) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):  # ω = 0: the slides' step is zero
        est = np.abs(trunc) + ctx.cost_error / (eps * np.abs(theta)) + ctx.tolerances[0]
        delta = est / np.maximum(2 * np.abs(g) + est, 1e-300)   # |A| + |G| ≈ 2|G| + est
    wm = fd.weight_mask(ctx.spec)
    delta = np.nan_to_num(delta[wm], nan=1.0)
    r = fd.slide_checker(ctx.costs, ctx.spec, theta, g, wm, eps=eps, delta=delta, unresolved=delta >= 0.5,
                         **ctx.verdict_fields())
    v = r.verdict
    if ctx.kink_entries.any():
        kinks = (r.kinks | ctx.kink_entries)[wm]
        und = r.undecided[wm]
        v = compare("slide_fd", ctx.spec, g[wm], np.where(und, 0, r.numerical[wm]), delta, kinks=kinks,
                    undecided=und, entry=lambda s, i: entry_of(s, np.flatnonzero(wm)[i]), **ctx.verdict_fields())
        zero = (ctx.packed.theta[wm] == 0) | ((r.numerical[wm] == 0) & (g[wm] == 0))
        v.message = fd.slide_undecided_message(v.message, zero, und, kinks)
    return v


def direction(g: np.ndarray, seed: int, kinks: np.ndarray) -> np.ndarray:
    """The directional check's v: random magnitudes with the signs of the implementation's own
    gradient (random where it is 0), unit length, zero on `kinks` (the entries left out).

    Signs from g make vᵀg a sum without cancellation, so its relative error means something (a
    random-sign v cancels vᵀg down to ~|g|/√P, where a float32 gradient's rounding alone reaches
    half of it); a wrong entry still moves vᵀg by |v_j e_j|, a flipped sign or a missing factor
    by a sum that cannot cancel. Kink entries are the ones whose derivative depends on the side
    of a unit sitting on its kink: along a v that leaves them alone, C is differentiable."""
    rng = np.random.default_rng(seed)
    magnitude, coin = np.abs(rng.standard_normal(g.size)), rng.choice([-1.0, 1.0], g.size)
    v = magnitude * np.where(g != 0, np.sign(g), coin) * ~kinks
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def check_directional(ctx: Context) -> Verdict:
    _, g = ctx.impl_result
    tol = ctx.tolerances[0]
    # v also leaves out the entries whose own rounding bound reaches their value (the true one,
    # from the reference, or the implementation's): no check can decide them, and in vᵀg their
    # bound would only dilute the others' (float32 at large scales: the whole sum went vacuous).
    # Judged by |g| + |reference|, so a gradient wrongly near 0 keeps its entry in v.
    hopeless = ~(tol < VACUOUS_BOUND * (np.abs(g) + np.abs(ctx.ref.flat)))
    v = direction(g, ctx.case.direction_seed, ctx.kink_entries | hopeless)
    if not v.any():
        why = ("every parameter is a kink entry: no direction avoids the kink" if ctx.kink_entries.all() else
               "every parameter is a kink entry or has a rounding bound as large as its value")
        return Verdict("directional", NOT_CHECKABLE, spec=ctx.spec.to_dict(), case=ctx.spec.describe(),
                       n_entries=1, n_kinks=1, message=why, **ctx.verdict_fields())
    analytic = float(np.abs(v) @ tol)
    *_, verdict = fd.directional_check(lambda ts: ctx.direction_costs(v, ts), ctx.packed.theta, g, v,
                                       ctx.cost_error, scale=ctx.scale, analytic_error=analytic, spec=ctx.spec,
                                       **ctx.verdict_fields())
    return verdict


def check_intermediates(ctx: Context) -> Verdict:
    f = ctx.verdict_fields()
    if not ctx.impl.capabilities.intermediates:
        return Verdict("intermediates", NOT_CHECKABLE, spec=ctx.spec.to_dict(), case=ctx.spec.describe(),
                       message="not declared: per-layer intermediates", **f)
    c = ctx.case
    inter = ctx.impl.intermediates(c.spec, c.params, c.X, c.Y)  # validated: PluginError if unusable
    deltas = [np.asarray(d, np.float64) for d in inter.deltas]
    _, _, _, dtol_impl, dtol_ref = ctx.tolerances
    a = np.concatenate([d.ravel() for d in deltas])
    b = np.concatenate([d.ravel() for d in ctx.ref.deltas])
    tol = np.concatenate([(x + y).ravel() for x, y in zip(dtol_impl, dtol_ref)])
    kinks = np.zeros(a.shape, bool)
    if ctx.ref.on_kink:
        kinks = b != np.concatenate([d.ravel() for d in ctx.ref.deltas_other_side])
    layout = [(j + 1, d.shape) for j, d in enumerate(ctx.ref.deltas)]

    def entry(spec, i):
        for layer, shape in layout:
            size = shape[0] * shape[1]
            if i < size:
                return Entry(layer, "delta", tuple(int(x) for x in np.unravel_index(i, shape)))
            i -= size
        raise IndexError(i)
    return compare("intermediates", ctx.spec, a, b, _relative(tol, a, b), kinks=kinks, entry=entry, **f)


def check_reference_agreement(ctx: Context) -> Verdict:
    c = ctx.central
    v = c.verdict
    if ctx.kink_entries.any():   # JAX's value there is one one-sided derivative; FD may see the other
        g = ctx.ref.flat
        v = compare("reference_agreement", ctx.spec, g, c.numerical,
                    _relative(c.error_estimate + ctx.tolerances[1], g, c.numerical), kinks=c.kinks | ctx.kink_entries,
                    fail_status=REFERENCE_MISMATCH)
    v.implementation = "reference"
    return v


CHECKS = {
    "vs_jax": check_vs_jax, "vs_fd": check_vs_fd, "richardson": check_richardson, "slide_fd": check_slide,
    "directional": check_directional, "intermediates": check_intermediates,
    "reference_agreement": check_reference_agreement,
}


_relative = relative_bound


def run_check(ctx: Context, check: str, fn=None, **options) -> Verdict:
    """One check on one context; a plug-in that raises or returns junk gives an error verdict.
    `fn(ctx, **options)` runs a check that is not one of CHECKS under the same handling
    (properties.scale_checks' modes)."""
    t0 = time.perf_counter()
    try:
        v = (fn or CHECKS[check])(ctx, **options)
    except PluginError as e:  # an error of the implementation, not a wrong gradient
        v = e.verdict(check, ctx.spec)
    if v.status == FAILED and ctx.impl is not None:
        v = _confirmed(ctx, v)
    if v.status != PASSED:  # a passing case needs no reproducer, and writing one costs more than the check
        v.reproducer = ctx.case.reproducer(ctx.impl_ref, check)
    v.case = ctx.case.describe()
    v.seconds = time.perf_counter() - t0
    return v


class _Wanted(Exception):
    """Raised by a Context collecting for run_many: the check needs this reference evaluation."""

    def __init__(self, key, request):
        super().__init__(key[0])
        self.key, self.request = key, request


# The reference evaluations the draws of one example share a call for: the request's kind ->
# the jax_ref function evaluating a list of requests of one architecture and batch size.
SHARED_CALLS = {"directional": "direction_costs_many"}
SHARING_CHECKS = ("directional",)   # the checks that ask for them (run_many gains nothing on others)


def run_many(ctxs: list, check: str) -> list[Verdict]:
    """run_check on each of `ctxs` (the draws of one property example: one spec and batch size),
    their reference evaluations made in shared calls (SHARED_CALLS): each check runs until it
    asks for one (_Wanted), the requests of all go in one call, and the checks run again with
    their results, until every one has a verdict. A check that asks for none runs once.

    A verdict that is not a pass and used a shared result is made again on a fresh context,
    alone: a failure is then exactly what its reproducer, which runs the case alone, prints."""
    verdicts, todo = [None] * len(ctxs), list(range(len(ctxs)))
    while todo:
        wanted = []
        for k in todo:
            ctxs[k]._collecting = True
            try:
                verdicts[k] = run_check(ctxs[k], check)
            except _Wanted as w:
                wanted.append((k, w))
            finally:
                ctxs[k]._collecting = False
        for kind in {w.key[0] for _, w in wanted}:
            mine = [(k, w) for k, w in wanted if w.key[0] == kind]
            results = getattr(jax_ref, SHARED_CALLS[kind])([w.request for _, w in mine])
            for (k, w), r in zip(mine, results):
                ctxs[k]._fetched[w.key] = r
        todo = [k for k, _ in wanted]
    for k, (ctx, v) in enumerate(zip(ctxs, verdicts)):
        if not v.ok and ctx.used_shared:
            verdicts[k] = run_check(Context(ctx.impl, ctx.case, ctx.impl_ref), check)
    return verdicts


def _confirmed(ctx: Context, v: Verdict) -> Verdict:
    """A failure is blamed on the gradient only if the implementation gives the same answer
    again: one that answers two identical calls differently (beyond reassociation, by the error
    model) is a non-deterministic implementation, an error verdict, not a wrong gradient."""
    problem = ctx.recheck
    if problem is None:
        return v
    e = problem.verdict(v.check, ctx.spec)
    e.extra["failed_verdict"] = v.summary()
    return e


# The reference program each check calls first (reference.jax_ref's entry points).
PROGRAM_OF = {"vs_jax": "gradient", "intermediates": "gradient", "vs_fd": "perturbed", "richardson": "perturbed",
              "slide_fd": "perturbed", "reference_agreement": "perturbed", "directional": "directional"}


def run_checks(impl, case: Case, checks=GRADIENT_CHECKS, impl_ref: str | None = None) -> list[Verdict]:
    ctx = Context(impl, case, impl_ref)
    # the programs later checks need are got on a second thread while the first check gets its
    # own: their tracing overlaps its compile (XLA releases the GIL)
    needed = list(dict.fromkeys(PROGRAM_OF[c] for c in checks if c in PROGRAM_OF))
    if len(needed) > 1:
        jax_ref.prepare_ahead(ctx.packed.bucket, needed[1:])
    return [run_check(ctx, c) for c in checks]


def reproduce(impl_ref: str, check: str, case: Case) -> Verdict:
    """Rerun one check on one case for an implementation named as on the command line. A failed
    verdict carries extra["table"] (`block_table`), which its explain() prints under the summary:
    a reproducer shows the wrong block entry by entry, not only its worst entry."""
    from implementations.registry import load
    ctx = Context(load(impl_ref), case, impl_ref)
    v = run_check(ctx, check)
    if v.status == FAILED:
        v.extra["table"] = block_table(ctx, v.worst)
    return Reproduced(**vars(v))


class Reproduced(Verdict):
    """A verdict whose explain() is what a reproducer prints: the summary, the network and the
    table of the wrong block (the reproducer's own code is the script being run: not again)."""

    def explain(self) -> str:
        lines = [self.summary()] + ([f"  network: {self.case}"] if self.spec else [])
        t = self.extra.get("table")
        if t:
            lines.append(f"  {t['block']}: {t['against']}"
                         + (f"; the {len(t['rows'])} furthest over their bounds of {t['entries']}" if t["more"] else ""))
            cells = [["entry", "implementation", "reference", "rel error", "bound", ""]] + [
                [e, f"{a:.17g}", f"{b:.17g}", f"{r:.3g}", f"{bd:.3g}", mark] for e, a, b, r, bd, mark in t["rows"]]
            width = [max(len(row[i]) for row in cells) for i in range(5)]
            lines += ["    " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, width)))
                      + ("  " + row[5] if row[5] else "") for row in cells]
            lines.append(f"  {t['over']} of {t['entries']} entries of {t['block']} over their bound")
        return "\n".join(lines)


TABLE_ROWS = 24   # entries of a block a reproducer lists: every one of a small block


def block_table(ctx: Context, worst: Entry | None) -> dict:
    """The block a failure points at, entry by entry, compared as check_vs_jax compares (the
    implementation against JAX, each entry under its error-model bound; for a failure in the
    deltas, the deltas against JAX's as check_intermediates compares them): the block of the
    worst entry, or the block furthest over its bounds where that entry is no parameter (a
    direction). JSON-able: {block, against, entries, over, more, rows: [[entry, impl, ref,
    rel error, bound, mark]]}, mark "OVER", "kink", "undecided" or ""."""
    from reference.compare import relative_errors
    from reference.spec import unflatten
    spec, ref = ctx.spec, ctx.ref
    against = "the implementation against the JAX reference, each entry under its error-model bound"
    if worst is not None and worst.param == "delta":
        against = "the implementation's deltas against JAX's, each entry under its error-model bound"
        j, c = worst.layer, ctx.case
        a = np.asarray(ctx.impl.intermediates(spec, c.params, c.X, c.Y).deltas[j - 1], np.float64)
        b, (*_, dtol_impl, dtol_ref) = ref.deltas[j - 1], ctx.tolerances
        tol, other = dtol_impl[j - 1] + dtol_ref[j - 1], (ref.deltas_other_side or ref.deltas)[j - 1]
        name, kinks, label = f"layer {j} dC/dz", b != other, lambda idx: Entry(j, "delta", idx)
    elif worst is not None and worst.param == "cost":
        a, b, tol = np.array([ctx.impl_result[0]]), np.array([ref.cost]), np.array([ctx.cost_tolerance])
        name, kinks, label = "the cost", np.zeros(1, bool), lambda idx: Entry(0, "cost", ())
    else:
        tol_impl, tol_ref, *_ = ctx.tolerances
        parts = [unflatten(spec, x) for x in (ctx.impl_result[1], ref.flat, tol_impl + tol_ref, ctx.kink_entries)]
        blocks = [(j, p, [layer[i] for layer in layers]) for j, layers in enumerate(zip(*parts), start=1)
                  for i, p in enumerate("Wb")]
        def furthest_over(blk):   # the largest |error| / tolerance of a block, kinks aside
            _, _, (a, b, tol, kinks) = blk
            return np.max(np.where(kinks, 0.0, np.abs(a - b) / np.maximum(tol, 1e-300)), initial=0.0)
        if worst is not None and worst.param in ("W", "b"):
            j, p, (a, b, tol, kinks) = blocks[2 * (worst.layer - 1) + (worst.param == "b")]
        else:
            j, p, (a, b, tol, kinks) = max(blocks, key=furthest_over)
        name, label = f"layer {j} dC/d{p}", lambda idx, j=j, p=p: Entry(j, p, idx)
    rel, bound = relative_errors(a, b), relative_bound(tol, a, b)
    undecided = ~(bound < VACUOUS_BOUND) & ~kinks
    over = (rel > bound) & ~kinks & ~undecided
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(kinks | undecided, -1.0, np.nan_to_num(rel / bound, nan=0.0))   # 0 / 0: an exact match
    shown = np.sort(np.argsort(-ratio.ravel(), kind="stable")[:TABLE_ROWS])
    rows = []
    for i in shown:
        idx = tuple(int(x) for x in np.unravel_index(i, a.shape)) if a.ndim else ()
        mark = "kink" if kinks.flat[i] else "undecided" if undecided.flat[i] else "OVER" if over.flat[i] else ""
        rows.append([str(label(idx)), float(a.flat[i]), float(b.flat[i]), float(rel.flat[i]), float(bound.flat[i]),
                     mark])
    shape = "×".join(map(str, a.shape))
    return {"block": f"{name} ({shape})" if a.size > 1 else name, "against": against, "entries": int(a.size),
            "over": int(over.sum()), "more": int(a.size - len(rows)), "rows": rows}
