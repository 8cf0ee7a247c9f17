"""The seeds' training rules as checks: pure functions -> Verdict, all with check "training_rule"
(`extra["rule"]` says which). Tolerances come from the shared error model (properties.errormodel
for gradients, reference.fd.cost_rounding for costs) plus the derivations below.

gd_step       One GD step is theta - eta grad C (seeds 000, 001) *bit for bit*: the rule and the
              expectation apply the same two roundings (eta * g, then theta - that) to the same
              gradient, the one the implementation returned to the rule for these inputs, so any
              difference is a wrong rule (reproducible gradients or not).

minibatch     A minibatch step uses the mean of the per-sample gradients (seed 001). The rule's
              step s = fl(theta - fl(eta g_B)) uses the implementation's gradient on the minibatch;
              the expectation e uses m = mean_i g_i of its per-sample gradients. Each rounds twice,
              |fl(theta - fl(eta g)) - (theta - eta g)| <= u (|theta| + 2 eta |g|), and
              |g_B - m| <= tol_B + mean_i tol_i + M u mean_i |g_i| (both within the error model of
              the exact mean gradient; the mean's own summation), so per entry
                  |s - e| <= eta (tol_B + mean tol_i + M u mean |g_i|) + 2u (|theta| + eta (|g_B| + |m|)).
              Entries whose gradient depends on which side of a kink a unit is on are kinks.

full_batch    A batch of all N samples, in any order, gives the GD step: as above with the
              per-sample mean replaced by the full-batch gradient in the original order
              (|g_perm - g| <= 2 tol_B: the error model is order-free).

first_order   C(theta - eta g) = C(theta) - eta g.grad C + O(eta^2) with g the implementation's own
              gradient: the reference cost's central difference along v = -g is compared with the
              predicted slope v.g = -||g||^2 (reference.fd.directional_check: truncation estimated
              from D(h) - D(2h), rounding 1.5 e_C / h, plus |v| . tol for g's own error). A gradient
              consistently wrong in direction predicts the wrong rate however hard the cost is to
              finite-difference per entry. When the uncertainty reaches ||g||^2 (the predicted
              change itself) nothing can be concluded: not_checkable. A stencil crossing a kink:
              not_checkable too (the expansion does not hold across it).

logistic_descent / logistic_gradient / svm_subgradient: see their docstrings.
"""
from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np

from implementations.numpy_mlp import gd_step, sigmoid, train_step
from properties import errormodel
from implementations.errors import PluginError
from implementations.validate import _same
from properties.checks import Case, Context
from reference import fd, jax_ref
from reference.compare import compare, entry_of, relative_bound
from reference.rounding import unit_roundoff
from reference.spec import KINKED_LOSSES, Layer, NetworkSpec, flatten, unflatten
from reference.verdict import ERROR, FAILED, NOT_CHECKABLE, PASSED, Verdict

CHECK = "training_rule"
U = unit_roundoff("float64")
SQRT2_M1 = math.sqrt(2.0) - 1.0


def _gamma(n: int) -> float:
    return n * U / (1 - n * U)


def _verdict(status, rule, who, case_text, message, spec=None, **extra) -> Verdict:
    return Verdict(check=CHECK, status=status, implementation=who, spec=None if spec is None else spec.to_dict(),
                   case=f"{rule}: {case_text}", message=message, extra={"rule": rule, **extra})


def _finish(v: Verdict, rule: str, case_text: str, t0: float, message: str = "", **extra) -> Verdict:
    v.check, v.case = CHECK, f"{rule}: {case_text}"
    v.extra = {"rule": rule, **v.extra, **extra}
    if message:
        v.message = f"{message}; {v.message}" if v.message and v.status == FAILED else message
    v.seconds = time.perf_counter() - t0
    return v


def _kinked(spec: NetworkSpec) -> bool:
    return spec.loss in KINKED_LOSSES or any(l.kinked for l in spec.layers)


def _name(impl) -> str:
    return getattr(impl, "name", str(impl))


def _step_flat(step, impl, case: Case, lr, batch=None) -> np.ndarray:
    try:
        new = step(impl, case.spec, [(W.copy(), b.copy()) for W, b in case.params], case.X.copy(),
                   case.Y.copy(), lr, batch)
        return flatten(new).astype(np.float64)
    except PluginError:
        raise
    except Exception as e:
        raise PluginError(_name(impl), "train_step", f"raised {type(e).__name__}: {e}") from e


class _Given:
    """The implementation as a training rule sees it: every gradients() call goes through, and
    what it returned for exactly the case's inputs is kept, the gradient the rule was given."""

    def __init__(self, impl, case: Case):
        self._impl, self._case, self.grads = impl, case, []

    def __getattr__(self, name):
        return getattr(self._impl, name)

    def gradients(self, spec, params, X, Y):
        c = self._case
        same = spec == c.spec and _same([list(params), X, Y], [list(c.params), c.X, c.Y])
        out = self._impl.gradients(spec, params, X, Y)
        if same:
            self.grads.append(flatten(out[1]).astype(np.float64))
        return out


def check_gd_step(impl, case: Case, lr: float, step=train_step) -> Verdict:
    """gd_step: the rule's GD step equals theta - eta g bit for bit (see the module docstring), g
    the gradient the implementation gave the rule for these very inputs (_Given): so it holds
    whether or not the implementation's gradients are reproducible bit for bit (a scalar engine
    walking a set sums in a new order on most calls, not all: probing reproducibility beforehand
    was a false alarm when the probes agreed and the rule's own call did not). A rule that gets
    its gradient some other way is held to the implementation's g: bit for bit when that is
    reproducible, else within the gradient's reassociation (2 tol, as full_batch) and the step's
    own rounding; reproducibility is probed before the step and, after a mismatch, again."""
    t0, rule, who = time.perf_counter(), "gd_step", _name(impl)
    try:
        ctx = Context(impl, case)
        _, g = ctx.impl_result
        reproducible = np.array_equal(g, Context(impl, case).impl_result[1])
        given = _Given(impl, case)
        got = _step_flat(step, given, case, lr)
    except PluginError as e:
        return _verdict(ERROR, rule, who, case.describe(), str(e), case.spec)
    dt = np.dtype(case.spec.dtype)        # the rule's arithmetic is in the spec's dtype: so is this
    for g_given in given.grads:
        expected = (flatten(case.params) - lr * g_given.astype(dt)).astype(np.float64)
        v = compare(CHECK, case.spec, got, expected, 0.0, implementation=who)
        if v.status == PASSED:
            break
    if given.grads:
        return _finish(v, rule, case.describe(), t0, f"one GD step with eta={lr:g} is theta - eta grad C bit for bit, "
                       "grad C as the implementation gave it to the step" if v.status == PASSED else
                       "the GD step is not theta - eta grad C bit for bit, grad C as the implementation gave it to the "
                       "step", lr=lr)
    expected = (flatten(case.params) - lr * g.astype(dt)).astype(np.float64)
    v = compare(CHECK, case.spec, got, expected, 0.0, implementation=who)
    if v.status != PASSED and reproducible:
        try:
            # the step's own gradient call may be the one that summed differently: the steps
            # (and the gradients) of a reproducible implementation are the same every time
            reproducible = (all(np.array_equal(g, Context(impl, case).impl_result[1]) for _ in range(3))
                            and all(np.array_equal(got, _step_flat(step, impl, case, lr)) for _ in range(3)))
        except PluginError as e:
            return _verdict(ERROR, rule, who, case.describe(), str(e), case.spec)
    if not reproducible:
        theta = flatten(case.params).astype(np.float64)
        tol = lr * 2 * ctx.tolerances[0] + _step_rounding(case.spec, theta, lr, g, g)
        v = compare(CHECK, case.spec, got, expected, relative_bound(tol, got, expected),
                    kinks=_kink_entries(ctx), implementation=who)
        return _finish(v, rule, case.describe(), t0, (
            "gradients are not reproducible bit for bit: " + ("one GD step is theta - eta grad C within their "
            "reassociation bound" if v.status == PASSED else "the GD step is not theta - eta grad C even within "
            "their reassociation bound")), lr=lr)
    return _finish(v, rule, case.describe(), t0, f"one GD step with eta={lr:g} is theta - eta grad C bit for bit"
                   if v.status == PASSED else "the GD step is not theta - eta grad C bit for bit", lr=lr)


def _step_rounding(spec, theta, lr, *grads) -> np.ndarray:
    """Bound on both steps' own rounding: u (|theta| + 2 eta |g|) each, summed."""
    u = unit_roundoff(spec.dtype)
    return sum(u * (np.abs(theta) + 2 * lr * np.abs(g)) for g in grads)


def _kink_entries(ctx: Context) -> np.ndarray:
    """Entries depending on a kink side (asks JAX only when the spec has kinks at all)."""
    return ctx.kink_entries if _kinked(ctx.spec) else np.zeros(flatten(ctx.case.params).size, bool)


def check_minibatch(impl, case: Case, lr: float, batch, step=train_step) -> Verdict:
    """minibatch: a step on X[batch] equals theta - eta * mean of the per-sample gradients."""
    t0, rule, who = time.perf_counter(), "minibatch", _name(impl)
    batch = np.asarray(batch, dtype=int)
    sub = Case.make(case.spec, case.params, case.X[batch], case.Y[batch], case.label)
    text = f"{case.describe()}, batch of {batch.size}"
    try:
        got = _step_flat(step, impl, case, lr, batch)
        ctx_b = Context(impl, sub)
        _, g_b = ctx_b.impl_result
        singles = [Context(impl, Case.make(case.spec, case.params, case.X[i:i + 1], case.Y[i:i + 1])) for i in batch]
        gs = np.array([c.impl_result[1] for c in singles])
    except PluginError as e:
        return _verdict(ERROR, rule, who, text, str(e), case.spec)
    theta = flatten(case.params).astype(np.float64)
    m = gs.mean(axis=0)
    expected = theta - lr * m
    u = unit_roundoff(case.spec.dtype)
    mean_tol = np.mean([c.tolerances[0] for c in singles], axis=0)
    tol = lr * (ctx_b.tolerances[0] + mean_tol + batch.size * u * np.abs(gs).mean(axis=0))
    tol += _step_rounding(case.spec, theta, lr, g_b, m)
    v = compare(CHECK, case.spec, got, expected, relative_bound(tol, got, expected),
                kinks=_kink_entries(ctx_b), implementation=who)
    return _finish(v, rule, text, t0, "the minibatch step is theta - eta * mean of per-sample gradients"
                   if v.status == PASSED else "the minibatch step is not theta - eta * mean of per-sample gradients",
                   lr=lr, batch_size=int(batch.size))


def check_full_batch(impl, case: Case, lr: float, order, step=train_step) -> Verdict:
    """full_batch: a step on the batch of all N samples (in `order`) equals the GD step."""
    t0, rule, who = time.perf_counter(), "full_batch", _name(impl)
    order = np.asarray(order, dtype=int)
    text = f"{case.describe()}, all {order.size} samples permuted"
    if sorted(order.tolist()) != list(range(case.X.shape[0])):
        raise ValueError(f"order: expected a permutation of range({case.X.shape[0]}), got {order.tolist()}")
    try:
        got = _step_flat(step, impl, case, lr, order)
        gd = _step_flat(step, impl, case, lr)
        ctx = Context(impl, case)
        _, g = ctx.impl_result
    except PluginError as e:
        return _verdict(ERROR, rule, who, text, str(e), case.spec)
    theta = flatten(case.params).astype(np.float64)
    tol = lr * 2 * ctx.tolerances[0] + _step_rounding(case.spec, theta, lr, g, g)
    v = compare(CHECK, case.spec, got, gd, relative_bound(tol, got, gd),
                kinks=_kink_entries(ctx), implementation=who)
    return _finish(v, rule, text, t0, "a batch of all N samples gives the GD step" if v.status == PASSED
                   else "a batch of all N samples does not give the GD step", lr=lr)


def check_first_order(impl, case: Case) -> Verdict:
    """first_order: the reference cost falls along -g at the predicted rate ||g||^2."""
    t0, rule, who = time.perf_counter(), "first_order", _name(impl)
    ctx = Context(impl, case)
    try:
        _, g = ctx.impl_result
    except PluginError as e:
        return _verdict(ERROR, rule, who, case.describe(), str(e), case.spec)
    g2 = float(g @ g)
    if g2 == 0.0:
        return _verdict(NOT_CHECKABLE, rule, who, case.describe(), "the gradient is zero: no step to take", case.spec)
    v = -g
    analytic = float(np.abs(v) @ ctx.tolerances[0])
    stencil = []

    def dcosts(ts):
        stencil.extend(ts)
        return jax_ref.direction_costs(ctx.packed, v, ts)
    D, G, est, crossed, verdict = fd.directional_check(
        dcosts, ctx.packed.theta, g, v, ctx.cost_error, scale=ctx.scale, analytic_error=analytic,
        spec=case.spec, implementation=who)
    extra = dict(predicted=G, measured=D, uncertainty=est + analytic)
    if crossed or ctx.kink_entries.any():
        verdict.status = NOT_CHECKABLE
        return _finish(verdict, rule, case.describe(), t0, "the step along -g crosses or sits on a kink: "
                       "the first-order expansion does not hold there", **extra)
    if est + analytic >= g2:
        verdict.status = NOT_CHECKABLE
        return _finish(verdict, rule, case.describe(), t0, f"uncertainty {est + analytic:.3g} reaches the "
                       f"predicted change rate ||g||^2 = {g2:.3g}: cannot resolve the direction", **extra)
    ok = verdict.status == PASSED
    return _finish(verdict, rule, case.describe(), t0,
                   f"C falls along -g at rate {-D:.6g}, predicted ||g||^2 = {g2:.6g}" if ok else
                   f"along -g the cost changes at rate {D:.6g}, the gradient predicts {G:.6g}", **extra)


# --- linear models: logistic regression and the SVM of seed 003 ----------------------------------

def linear_spec(d: int, loss: str, l2: float = 0.0) -> NetworkSpec:
    """One identity unit: with loss 'logistic' that is logistic regression, with 'hinge' and
    l2 = 2 lambda it is seed 003's SVM objective lambda ||w||^2 + mean max(0, 1 - y (w.x + b))."""
    return NetworkSpec(d, (Layer(1, "identity"),), loss, l2)


def _linear_params(w, b):
    return [(np.asarray(w, np.float64)[None, :], np.array([float(b)]))]


def linear_gradient(impl, loss: str):
    """An implementation as a gradient function (X, y, w, b, lam=0) -> (gw, gb) of the linear
    model with l2 = 2 lam (the seed's lambda ||w||^2). The loss must be declared (the gate
    decides here, before any call: a refusal inside `grad` would read as the plug-in's error);
    a lam > 0 needs the regularizer, which the caller decides with supports(linear_spec(.., l2))."""
    reason = impl.capabilities.supports(linear_spec(1, loss))
    if reason:
        raise ValueError(f"linear_gradient: not declared: {reason}")

    def grad(X, y, w, b, lam=0.0):
        spec = linear_spec(X.shape[1], loss, 2 * lam)
        _, grads = impl.gradients(spec, _linear_params(w, b), X, y[:, None])
        gW, gb = grads[0]
        return np.asarray(gW, np.float64).ravel(), float(np.asarray(gb).ravel()[0])
    grad.who = _name(impl)
    return grad


def logistic_gradient_seed(X, y, w, b):
    """Seed 003's `gradient(x, y, w, b)` divided by N (backcheck's cost is the batch mean):
    u = y sigma(-y (X w + b)), v = x u; returns (-sum v / N, -sum u / N)."""
    u = y * sigmoid(-y * (X @ w + b))
    v = X * u[:, None]
    return -v.sum(0) / len(y), -u.sum() / len(y)


logistic_gradient_seed.who = "seed 003 logistic formula"


def svm_subgradient_seed(X, y, w, b, lam):
    """A subgradient of seed 003's lambda ||w||^2 + mean max(0, 1 - y (w.x + b)): the hinge term
    gives -y x where the margin is < 1 and nothing elsewhere (0 at the hinge, a valid choice)."""
    active = y * (X @ w + b) < 1
    return 2 * lam * w - (y[active, None] * X[active]).sum(0) / len(y), -y[active].sum() / len(y)


svm_subgradient_seed.who = "seed 003 svm subgradient"


def _call_linear(grad, X, y, w, b, *args):
    try:
        gw, gb = grad(X.copy(), y.copy(), np.array(w, np.float64), float(b), *args)
        out = np.concatenate([np.asarray(gw, np.float64).ravel(), [float(gb)]])
    except Exception as e:
        raise PluginError(getattr(grad, "who", "gradient"), "gradient", f"raised {type(e).__name__}: {e}") from e
    if out.shape != (X.shape[1] + 1,) or not np.all(np.isfinite(out)):
        raise PluginError(getattr(grad, "who", "gradient"), "gradient",
                          f"returned {out.size} values (finite: {np.all(np.isfinite(out))}), expected {X.shape[1] + 1} finite")
    return out


def _linear_text(X, extra=""):
    return f"N={X.shape[0]} d={X.shape[1]}{extra}"


def check_logistic_gradient(grad, X, y, w, b) -> Verdict:
    """logistic_gradient: the gradient function equals JAX's, within both error models."""
    t0, rule, who = time.perf_counter(), "logistic_gradient", getattr(grad, "who", "gradient")
    spec, params, Y = linear_spec(X.shape[1], "logistic"), _linear_params(w, b), y[:, None]
    try:
        g = _call_linear(grad, X, y, w, b)
    except PluginError as e:
        return _verdict(ERROR, rule, who, _linear_text(X), str(e), spec)
    ref = jax_ref.gradients(spec, params, X, Y)
    tol = 2 * errormodel.gradient_tolerance(spec, params, X, Y)[0]   # this one's and JAX's, both float64
    v = compare(CHECK, spec, g, ref.flat, relative_bound(tol, g, ref.flat), implementation=who)
    return _finish(v, rule, _linear_text(X), t0)


def check_logistic_descent(grad, X, y, w, b, fraction: float) -> Verdict:
    """logistic_descent: a GD step with eta = fraction / L, L a Lipschitz constant of grad C,
    does not increase the mean logistic cost; it decreases it by the descent lemma's amount.

    L: the Hessian (1/N) sum sigma(s) sigma(-s) x~ x~^T <= X~^T X~ / (4N) (x~ = (x, 1): the bias
    is a coordinate), so L = ||X~||_2^2 / (4N) <= ||X~||_F^2 / (4N); the computed Frobenius sum
    is inflated by (1 + gamma_{N(d+1)+2}) to stay an upper bound.
    Descent lemma with the *float* step theta' = theta - eta grad C + r, where r collects the
    gradient's error (|g - grad C| <= tol, error model) and the step's two roundings
    (u (|theta| + 2 eta |g|)), and eta L <= 1:
        C(theta') - C(theta) <= -eta (1 - L eta / 2) ||grad C||^2 + (1 - L eta) grad C . r + L ||r||^2 / 2
                             <= -(eta / 2) ||grad C||^2 (1 - 2 rho - rho^2),   rho = ||r|| / (eta ||grad C||),
    a decrease whenever rho < sqrt(2) - 1. With ||grad C|| >= ||g|| - ||tol|| this is checkable
    from computed quantities; otherwise (a near-stationary point, or a step below the resolution
    of theta) not_checkable. The two cost evaluations (JAX, float64) each carry e_C
    (reference.fd.cost_rounding), so the assertion is
        C^(theta') <= C^(theta) - (eta / 2) (||g|| - ||tol||)^2 (1 - 2 rho - rho^2) + e_C(theta) + e_C(theta').
    """
    t0, rule, who = time.perf_counter(), "logistic_descent", getattr(grad, "who", "gradient")
    N, d = X.shape
    spec, params, Y = linear_spec(d, "logistic"), _linear_params(w, b), y[:, None]
    text = _linear_text(X, f" eta={fraction:g}/L")
    try:
        g = _call_linear(grad, X, y, w, b)
    except PluginError as e:
        return _verdict(ERROR, rule, who, text, str(e), spec)
    Xt = np.hstack([X, np.ones((N, 1))])
    L = float(np.sum(Xt * Xt)) / (4 * N) * (1 + _gamma(N * (d + 1) + 2))
    eta = fraction / L
    theta = flatten(params)
    new = gd_step(params, unflatten(spec, g), eta)          # the seeds' rule, in float
    tol = errormodel.gradient_tolerance(spec, params, X, Y)[0]
    r = np.linalg.norm(eta * tol + U * (np.abs(theta) + 2 * eta * np.abs(g)))
    gn = float(np.linalg.norm(g)) - float(np.linalg.norm(tol))
    rho = r / (eta * gn) if gn > 0 else math.inf
    before, after = jax_ref.gradients(spec, params, X, Y), jax_ref.gradients(spec, new, X, Y)
    errs = sum(errormodel.reference_cost_error(spec, errormodel.model(spec, p, X, Y).zfwd_out, c)
               for c, p in ((before, params), (after, new)))
    extra = dict(eta=eta, L=L, cost_before=before.cost, cost_after=after.cost, rho=rho)
    if not rho < SQRT2_M1:
        return _verdict(NOT_CHECKABLE, rule, who, text, f"the step's rounding and the gradient's error bound "
                        f"(rho = {rho:.3g} >= sqrt(2) - 1) can outweigh the step: no descent guarantee", spec, **extra)
    guaranteed = eta / 2 * gn * gn * (1 - 2 * rho - rho * rho)
    change = after.cost - before.cost
    extra.update(guaranteed_decrease=guaranteed, change=change, slack=errs)
    if change <= -guaranteed + errs:
        return _verdict(PASSED, rule, who, text, f"cost {before.cost:.6g} -> {after.cost:.6g}, a decrease of at "
                        f"least the guaranteed {guaranteed:.3g} (within {errs:.2g})", spec, **extra)
    v = _verdict(FAILED, rule, who, text, f"cost {before.cost:.17g} -> {after.cost:.17g} (change {change:.3g}) "
                 f"with eta = {fraction:g}/L: the descent lemma guarantees a decrease of {guaranteed:.3g} "
                 f"(cost rounding {errs:.2g})", spec, **extra)
    v.seconds = time.perf_counter() - t0
    return v


def _exact(A) -> list:
    return [Fraction(float(v)) for v in np.ravel(A)]


def _svm_margins(Xt: list, y, th: list) -> list:
    """y_n (theta . x~_n), exactly (rows of Fractions, theta as Fractions)."""
    return [int(yn) * sum(x * t for x, t in zip(row, th)) for row, yn in zip(Xt, y)]


def _svm_cost(Xt: list, y, th: list, lam: Fraction) -> Fraction:
    """Seed 003's lambda ||w||^2 + mean max(0, 1 - y (w.x + b)), exactly; th = (w, b)."""
    hinge = sum(max(Fraction(0), 1 - m) for m in _svm_margins(Xt, y, th))
    return lam * sum(v * v for v in th[:-1]) + hinge / len(Xt)


def one_sided_derivatives(X, y, w, b, lam) -> tuple[list, list]:
    """Exact one-sided derivatives of the SVM objective along -e_j and +e_j for every
    coordinate (w then b), from the objective itself: C is piecewise quadratic, so for a step t
    below the distance to the nearest kink not at theta, (C(theta + t e_j) - C(theta)) / t is
    the right derivative plus lambda t (w coordinates), exactly. Returns (lo, hi): the
    subdifferential's projection [-C'(theta; -e_j), C'(theta; +e_j)] per coordinate."""
    N, d = X.shape
    Xt = [_exact(row) + [Fraction(1)] for row in X]
    th0 = _exact(w) + [Fraction(float(b))]
    lam = Fraction(float(lam))
    m = _svm_margins(Xt, y, th0)
    c0 = _svm_cost(Xt, y, th0, lam)
    lo, hi = [], []
    for j in range(d + 1):
        kinks = [abs(1 - mi) / abs(Xt[n][j]) for n, mi in enumerate(m) if mi != 1 and Xt[n][j] != 0]
        t = min(kinks, default=Fraction(1)) / 2
        quad = lam * t if j < d else 0
        right, left = ((_svm_cost(Xt, y, th0[:j] + [th0[j] + s * t] + th0[j + 1:], lam) - c0) / t - quad
                       for s in (1, -1))
        lo.append(-left)
        hi.append(right)
    return lo, hi


def on_hinge(X, y, w, b) -> int:
    """How many samples sit exactly on the hinge, y (w.x + b) = 1."""
    return sum(m == 1 for m in _svm_margins([_exact(r) + [Fraction(1)] for r in X], y, _exact(w) + [Fraction(float(b))]))


def check_svm_subgradient(grad, X, y, w, b, lam: float) -> Verdict:
    """svm_subgradient: away from the hinge (no sample within the kink zone of JAX's reference)
    the gradient equals JAX's within both error models; with samples exactly on the hinge
    (y (w.x + b) = 1, decided exactly) each coordinate lies between the one-sided derivatives
    (`one_sided_derivatives`), within the gradient's error model. A sample within rounding of
    the hinge but not on it: not_checkable (an implementation may put it on either side)."""
    t0, who = time.perf_counter(), getattr(grad, "who", "gradient")
    spec, params, Y = linear_spec(X.shape[1], "hinge", 2 * lam), _linear_params(w, b), y[:, None]
    text = _linear_text(X, f" lambda={lam:g}")
    try:
        g = _call_linear(grad, X, y, w, b, lam)
    except PluginError as e:
        return _verdict(ERROR, "svm_subgradient", who, text, str(e), spec)
    ref = jax_ref.gradients(spec, params, X, Y)
    tol = errormodel.gradient_tolerance(spec, params, X, Y)[0]
    if ref.on_kink == 0:
        v = compare(CHECK, spec, g, ref.flat, relative_bound(2 * tol, g, ref.flat),  # 2x before dividing: no overflow
                    implementation=who)
        return _finish(v, "svm_subgradient off the hinge", text, t0)
    rule = "svm_subgradient on the hinge"
    on = on_hinge(X, y, w, b)
    if on != ref.on_kink:
        return _verdict(NOT_CHECKABLE, rule, who, text, f"{ref.on_kink - on} sample(s) within rounding of the "
                        f"hinge but not on it: either side is a correct answer", spec)
    lo, hi = one_sided_derivatives(X, y, w, b, lam)
    lo, hi = np.array([float(v) for v in lo]), np.array([float(v) for v in hi])
    outside = np.maximum(np.maximum(lo - g, g - hi), 0.0)      # distance from [lo, hi], 0 inside
    # lo/hi are exact rationals rounded once: allow their rounding too
    allowed = tol + U * (np.abs(lo) + np.abs(hi))
    worst = int(np.argmax(outside - allowed))
    bad = outside > allowed
    v = _verdict(FAILED if bad.any() else PASSED, rule, who, text, "", spec, on_hinge=int(on))
    v.n_entries, v.n_kinks = int(g.size), int((hi > lo).sum())
    v.worst, v.worst_values = entry_of(spec, worst), (float(g[worst]), float(np.clip(g[worst], lo[worst], hi[worst])))
    v.message = (f"{bad.sum()} coordinate(s) outside the one-sided derivatives [lo, hi]: "
                 f"{v.worst} = {g[worst]:.17g} not in [{lo[worst]:.17g}, {hi[worst]:.17g}]" if bad.any() else
                 f"every coordinate between the one-sided derivatives ({on} sample(s) on the hinge)")
    v.seconds = time.perf_counter() - t0
    return v
