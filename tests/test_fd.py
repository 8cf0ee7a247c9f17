"""The finite-difference checkers: the slides' one (faithful, with its holes reported), the
central and Richardson ones with their error estimates, and kink detection."""
import numpy as np
import pytest

from implementations.numpy_mlp import builtin
from properties.checks import Case, Context, run_check
from reference import fd, jax_ref
from reference.compare import entry_of
from reference.spec import Layer, NetworkSpec, init_params, mlp, random_batch, unflatten


def setup(spec, seed=0, n=5):
    rng = np.random.default_rng(seed)
    p = init_params(spec, rng)
    X, Y = random_batch(spec, rng, n)
    return p, X, Y, jax_ref.pack(spec, p, X, Y), jax_ref.gradients(spec, p, X, Y)


def costs_of(packed):
    return lambda idx, vals: jax_ref.perturbed_costs(packed, idx, vals)


def test_slide_checker_is_faithful_and_reports_what_it_cannot_decide():
    spec = mlp(3, [4, 1], ["tanh", "identity"], "mse")
    p, X, Y, pk, ref = setup(spec)
    p[0][0][1, 2] = 0.0                      # a zero weight: ω(1 ± ε) = ω, A = 0/0
    pk, ref = jax_ref.pack(spec, p, X, Y), jax_ref.gradients(spec, p, X, Y)
    wm = fd.weight_mask(spec)
    r = fd.slide_checker(costs_of(pk), spec, pk.theta, ref.flat, wm, eps=1e-6, delta=1e-6)
    zero = 1 * 3 + 2                          # flat index of W1[1, 2] (W1 is 4x3)
    assert r.undecided[zero] and np.isnan(r.numerical[zero])
    assert r.verdict.n_undecided == 1 and "divides by zero" in r.verdict.message
    assert not np.any(r.undecided[~wm]) and np.all(np.isnan(r.numerical[~wm]))  # biases never checked
    assert r.verdict.status == "passed", r.verdict.summary()
    # the slides' formula by hand for one weight
    i = 0
    w = pk.theta[i]
    cp, _ = costs_of(pk)(np.array([i, i]), np.array([w * (1 + 1e-6), w * (1 - 1e-6)]))
    assert r.numerical[i] == (cp[0] - cp[1]) / (2 * 1e-6 * w)


def test_perturbed_costs_are_the_costs_of_the_changed_networks():
    """The batched evaluator changes one parameter per evaluation without copying the weights
    (jax_ref._entry_change): each cost must be the changed network's own cost, for every weight,
    bias and maxout piece, with the regularizer, in a net padded to a deeper bucket; and a change
    that moves a ReLU unit across its kink must say so."""
    spec = NetworkSpec(3, (Layer(4, "maxout", pieces=3), Layer(5, "relu"), Layer(2, "tanh")), "mse", 0.1)
    p, X, Y, pk, ref = setup(spec, seed=3, n=6)
    theta = pk.theta
    idx = np.arange(theta.size)
    for step in (1e-4, 0.5):
        values = theta + step * (1 + np.abs(theta))
        got, crossed = jax_ref.perturbed_costs(pk, idx, values)
        for i in idx:
            changed = theta.copy()
            changed[i] = values[i]
            cp = unflatten(spec, changed)
            want = jax_ref.gradients(spec, cp, X, Y).cost
            assert got[i] == pytest.approx(want, rel=1e-14, abs=1e-15), (i, step)
            assert crossed[i] == _kink_pattern_moved(spec, p, cp, X), (i, step)
    assert crossed.any()  # the large change does cross (else the last check proves nothing)


def _kink_pattern_moved(spec, p, cp, X) -> bool:
    """Whether the maxout winners or the ReLU signs differ between two parameter sets."""
    def pattern(params):
        (W1, b1), (W2, b2), _ = params
        z1 = (X @ W1.T + b1).reshape(len(X), 4, 3)
        h1 = z1.max(axis=2)
        return np.concatenate([z1.argmax(axis=2).ravel(), (h1 @ W2.T + b2 > 0).ravel()])
    return bool(np.any(pattern(p) != pattern(cp)))


def test_slide_checker_fails_a_wrong_gradient():
    spec = mlp(3, [4, 1], ["tanh", "identity"], "mse")
    p, X, Y, pk, ref = setup(spec)
    wrong = ref.flat.copy()
    wrong[3] *= 1.01
    r = fd.slide_checker(costs_of(pk), spec, pk.theta, wrong, fd.weight_mask(spec), delta=1e-6)
    assert r.verdict.status == "failed" and str(r.verdict.worst) == "layer 1 W[1,0]"


def test_slide_checker_undecided_when_gradient_and_estimate_are_zero():
    spec = NetworkSpec(1, (Layer(1, "relu"), Layer(1, "identity")), "mse")
    p = [(np.array([[1.0]]), np.array([-5.0])), (np.array([[2.0]]), np.array([0.0]))]
    X, Y = np.array([[1.0]]), np.array([[2.0]])   # the ReLU unit is off: C± equal, A = G = 0 (0/0)
    pk = jax_ref.pack(spec, p, X, Y)
    ref = jax_ref.gradients(spec, p, X, Y)
    r = fd.slide_checker(costs_of(pk), spec, pk.theta, ref.flat, fd.weight_mask(spec))
    assert r.verdict.status == "not_checkable" and r.verdict.n_undecided == 2


def test_central_and_richardson_error_estimates_cover_their_actual_error():
    spec = mlp(4, [5, 3, 2], ["tanh", "sigmoid", "identity"], "mse")
    p, X, Y, pk, ref = setup(spec, seed=3)
    e_C = fd.cost_rounding(ref.cost, ref.output_sensitivity, spec.depth)
    c = fd.central_checker(costs_of(pk), spec, pk.theta, ref.flat, e_C)
    r = fd.richardson_checker(costs_of(pk), spec, pk.theta, ref.flat, e_C)
    for res in (c, r):
        assert res.verdict.status == "passed", res.verdict.summary()
        assert np.all(np.abs(res.numerical - ref.flat) <= res.error_estimate)
    # Richardson is the more accurate of the two on a smooth network
    assert np.median(np.abs(r.numerical - ref.flat)) < np.median(np.abs(c.numerical - ref.flat))


def test_central_checker_names_the_wrong_entry():
    spec = mlp(4, [5, 3, 2], ["tanh", "sigmoid", "identity"], "mse")
    p, X, Y, pk, ref = setup(spec, seed=3)
    wrong = ref.flat.copy()
    wrong[-1] += 1e-4                         # layer 3 b[1]
    e_C = fd.cost_rounding(ref.cost, ref.output_sensitivity, spec.depth)
    v = fd.central_checker(costs_of(pk), spec, pk.theta, wrong, e_C).verdict
    assert v.status == "failed" and str(v.worst) == "layer 3 b[1]"


def test_kink_inside_the_stencil_is_detected_not_failed():
    """A ReLU unit whose pre-activation is within the FD step of 0: the perturbation crosses the
    kink, and the entry is reported as a non-differentiable point."""
    spec = NetworkSpec(1, (Layer(1, "relu"), Layer(1, "identity")), "mse")
    p = [(np.array([[1.0]]), np.array([-1.0 + 1e-9])), (np.array([[2.0]]), np.array([0.0]))]
    X, Y = np.array([[1.0]]), np.array([[3.0]])   # z = 1e-9 > 0, but z ± h crosses 0
    case = Case.make(spec, p, X, Y)
    v = run_check(Context(builtin, case), "vs_fd")
    assert v.ok and v.n_kinks >= 1, v.summary()


def test_reference_agreement_reports_a_broken_reference_as_a_harness_problem():
    spec = mlp(3, [4, 1], ["tanh", "identity"], "mse")
    p, X, Y, _, _ = setup(spec)
    ctx = Context(builtin, Case.make(spec, p, X, Y))
    ctx.ref.flat[2] *= 1.001                  # as if JAX's gradient were wrong
    v = run_check(ctx, "reference_agreement")
    assert v.status == "reference_mismatch" and v.implementation == "reference"


# bench_zoo, textbook_numpy: correct gradients flagged by Richardson at weight scale 10, where a
# unit saturates between the steps h/2 and h (D(h) and D(h/2) agreed by accident, both off)
RICHARDSON_OUT_OF_RANGE = [
    (NetworkSpec(15, (Layer(8, "relu"), Layer(4, "relu"), Layer(10, "identity"), Layer(7, "relu"), Layer(4, "tanh")),
                 "mse"), 32, 1621),
    (NetworkSpec(9, (Layer(16, "identity"), Layer(7, "relu"), Layer(15, "relu"), Layer(1, "sigmoid")), "bce",
                 l2=0.001), 22, 91),
]


@pytest.mark.parametrize("spec, n, seed", RICHARDSON_OUT_OF_RANGE, ids=["tanh-mse", "sigmoid-bce"])
def test_richardson_outside_its_asymptotic_range_widens_its_estimate_not_a_false_alarm(spec, n, seed):
    """The next extrapolation (h/2, h/4) shows R still moving: the estimate covers that move, so
    the correct gradient passes, and each entry's estimate still covers its actual error; a
    wrong entry among them is still caught."""
    from properties.strategies import case_of
    case = case_of(spec, n, "large", False, seed)
    ctx = Context(builtin, case)
    v = run_check(ctx, "richardson")
    assert v.status == "passed", v.summary()
    r = fd.richardson_checker(ctx.costs, spec, ctx.packed.theta, ctx.ref.flat, ctx.cost_error, scale=ctx.scale)
    ok = ~r.kinks
    assert np.all(np.abs(r.numerical - ctx.ref.flat)[ok] <= r.error_estimate[ok])
    wrong = ctx.ref.flat.copy()
    i = int(np.flatnonzero(ok & (r.error_estimate < 1e-3 * np.abs(wrong)))[0])
    wrong[i] *= 1.01
    w = fd.richardson_checker(ctx.costs, spec, ctx.packed.theta, wrong, ctx.cost_error, scale=ctx.scale).verdict
    assert w.status == "failed" and w.worst == entry_of(spec, i), w.summary()
