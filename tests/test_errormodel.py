"""The error model held from both sides: every derivative formula correct code really uses
(properties/errormodel.py FORMULAS) passes vs_jax on raw inputs that push it where it is least
accurate (saturation, large scales, exact zeros, λ > 0), the mutants of those same formulas fail,
and no bound is ever below the rounding of the value it guards."""
import numpy as np
import pytest

from implementations.numpy_mlp import NumpyMLP, sigmoid
from properties import errormodel
from properties.checks import Case, Context, run_check
from properties.strategies import params_for, targets
from reference.rounding import unit_roundoff
from reference.spec import Layer, NetworkSpec


class OutputDerived(NumpyMLP):
    """Correct, in the textbook / JAX-default / PyTorch forms: σ' = h (1 - h), tanh' = 1 - h²,
    elu' = a (expm1(z) + 1), bce' = σ(z) - t, logistic' = σ(y) - (1 + t)/2, softmax - onehot."""

    name = "output-derived"

    def act(self, k, layer, z):
        h, d = super().act(k, layer, z)
        if layer.activation == "sigmoid":
            d = h * (1 - h)
        elif layer.activation == "tanh":
            d = 1 - h * h
        elif layer.activation == "elu":
            d = np.where(z > 0, 1.0, layer.param * (np.expm1(np.minimum(z, 0)) + 1))
        return h, d

    def loss(self, name, y, t):
        per_sample, g = super().loss(name, y, t)
        if name == "bce":
            g = sigmoid(y) - t
        elif name == "logistic":
            g = sigmoid(y) - (1 + t) / 2
        elif name == "softmax_ce":
            e = np.exp(y - y.max(axis=1, keepdims=True))
            g = e / e.sum(axis=1, keepdims=True) - t
        return per_sample, g


class WrongElu(OutputDerived):
    name = "wrong-elu"

    def act(self, k, layer, z):
        h, d = super().act(k, layer, z)
        if layer.activation == "elu":
            d = np.where(z > 0, 1.0, np.expm1(np.minimum(z, 0)) + 1)   # the α forgotten
        return h, d


class WrongBce(OutputDerived):
    name = "wrong-bce"

    def loss(self, name, y, t):
        per_sample, g = super().loss(name, y, t)
        return per_sample, (sigmoid(y) - t) * (1 + 1e-6) if name == "bce" else g


def _case(spec, seed, scale, zeros, n=6):
    rng = np.random.default_rng(seed)
    params = params_for(spec, rng, scale, zeros)
    return Case.make(spec, params, rng.standard_normal((n, spec.n_in)), targets(spec, rng, n), label=f"seed={seed}")


SATURATING = [
    NetworkSpec(4, (Layer(6, "elu", alpha=2.0), Layer(5, "elu"), Layer(1, "identity")), "bce", l2=0.1),
    NetworkSpec(3, (Layer(5, "sigmoid"), Layer(4, "tanh"), Layer(1, "identity")), "logistic"),
    NetworkSpec(5, (Layer(8, "tanh"), Layer(8, "elu", alpha=0.3), Layer(4, "identity")), "softmax_ce", l2=1e-3),
    NetworkSpec(8, (Layer(7, "identity"), Layer(1, "identity"), Layer(3, "identity")), "softmax_ce"),
]


@pytest.mark.parametrize("spec", SATURATING, ids=lambda s: s.describe())
def test_every_formula_correct_code_uses_passes_on_raw_inputs(spec):
    impl = OutputDerived()
    decided = 0
    for seed in range(12):
        for scale, zeros in ((8.0, True), (30.0, False), (1.0, True)):
            v = run_check(Context(impl, _case(spec, seed, scale, zeros), "output-derived"), "vs_jax")
            assert v.ok, v.explain()
            decided += v.n_entries - v.n_kinks - v.n_undecided
    assert decided > 0


@pytest.mark.parametrize("wrong", [WrongElu, WrongBce])
def test_a_wrong_derivative_in_those_forms_still_fails(wrong):
    spec = SATURATING[0]
    statuses = [run_check(Context(wrong(), _case(spec, seed, 1.0, False), wrong.name), "vs_jax").status
                for seed in range(3)]
    assert statuses == ["failed"] * 3


def test_softmax_couples_the_classes_errors():
    """Seed 0 of the dev-profile failure in issue 15: a class whose logit is exact (its weight row
    is 0) still has p = exp(z - lse) with lse's error; the delta bound must carry it."""
    spec = SATURATING[3]
    case = _case(spec, 0, 8.0, True, n=2)
    for check in ("intermediates", "vs_jax"):
        v = run_check(Context(NumpyMLP(), case, "builtin"), check)
        assert v.ok, v.explain()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_no_bound_below_the_rounding_of_the_value_it_guards(dtype):
    specs = [s.with_(dtype=dtype) for s in SATURATING]
    for spec in specs:
        for seed in range(4):
            case = _case(spec, seed, 8.0, True)
            ctx = Context(None, case)
            u = unit_roundoff(dtype)
            tol, _, _, dtol, _ = ctx.tolerances
            assert np.all(tol >= u * np.abs(ctx.ref.flat))
            for d, t in zip(ctx.ref.deltas, dtol):
                assert np.all(t >= u * np.abs(d))


def test_forward_error_follows_cancellation_not_the_size_of_z():
    """z = w1 x1 + w2 x2 cancelling to ~0: its rounding error is relative to |w1 x1| + |w2 x2|, and
    a deep network's output error carries every layer's (the propagated magnitude)."""
    spec = NetworkSpec(2, (Layer(1, "identity"), Layer(1, "identity")), "mse")
    params = [(np.array([[1e8, -1e8]]), np.array([0.0])), (np.array([[1e3]]), np.array([0.0]))]
    X, Y = np.array([[1.0, 1.0]]), np.array([[0.0]])
    m = errormodel.model(spec, params, X, Y)
    assert m.zfwd_out[0, 0] >= 2e8 * 1e3           # |W2| (|W1| |x|) although z is 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_libraries_transcendentals_are_within_libm_ulps(dtype):
    """LIBM_ULPS is a measured property of what correct code calls, not a tuning knob: XLA's
    (through JAX, as users write it) and NumPy's tanh, sigmoid, expm1, exp and softplus."""
    import jax
    import jax.numpy as jnp
    if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
        pytest.skip("no extended precision on this machine to measure float64 against")
    u = unit_roundoff(dtype)
    z = np.concatenate([np.linspace(-20, 20, 40001), np.logspace(-30, 1.5, 2001), -np.logspace(-30, 1.5, 2001)]).astype(dtype)
    # the truth in extended precision (x86's 80-bit long double: 11 more bits than float64)
    exact = {"tanh": np.tanh, "sigmoid": lambda x: np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x))),
             "expm1": np.expm1, "exp": np.exp, "softplus": lambda x: np.logaddexp(x, np.zeros_like(x))}
    ours = {"tanh": (jnp.tanh, np.tanh), "sigmoid": (jax.nn.sigmoid, sigmoid), "expm1": (jnp.expm1, np.expm1),
            "exp": (jnp.exp, np.exp), "softplus": (jax.nn.softplus, lambda x: np.logaddexp(x, np.zeros_like(x)))}
    worst = {}
    for name, fns in ours.items():
        e = exact[name](z.astype(np.longdouble))
        for f in fns:
            got = np.asarray(f(z)).astype(np.longdouble)
            ok = np.isfinite(e) & (e != 0) & (np.abs(e) >= np.finfo(dtype).tiny)
            worst[name] = max(worst.get(name, 0.0), float(np.max(np.abs(got[ok] - e[ok]) / np.abs(e[ok]))) / u)
    assert max(worst.values()) <= errormodel.LIBM_ULPS, worst


def _float32_zoo_member():
    """tests/zoo/float32_numpy.py's IMPL, in-process."""
    from pathlib import Path
    from implementations.registry import load
    return load(str(Path(__file__).parent / "zoo" / "float32_numpy.py") + ":IMPL", isolate=False)


def test_a_loss_term_on_its_kink_bounds_the_cost_by_either_sides_slope():
    """The float32 zoo member through the user path (1 of 1,629 verdicts): a sigmoid output of
    6e-16 in a perceptron loss term on its kink. The side the reference takes has slope 0, the
    other slope 1; the cost (the sigmoid's value, relative error |Δz| from the float32 forward)
    is bounded by the larger."""
    from properties.checks import Context, run_check
    from properties.strategies import case_of
    from reference.spec import Layer, NetworkSpec
    spec = NetworkSpec(11, (Layer(14, "identity"), Layer(15, "identity"), Layer(16, "identity"), Layer(1, "sigmoid")),
                       "perceptron", dtype="float32")
    case = case_of(spec, 1, "large", False, 3)
    impl = _float32_zoo_member()
    ctx = Context(impl, case)
    assert ctx.ref.on_kink and 0 < ctx.ref.cost < 1e-15
    v = run_check(ctx, "vs_jax")
    assert v.status == "passed" and v.n_kinks == v.n_entries - 1, v.summary()
    assert abs(ctx.impl_result[0] - ctx.ref.cost) > 1e-6 * ctx.ref.cost   # the error is real


def test_an_input_that_underflows_in_the_dtype_puts_the_next_unit_in_its_kink_zone():
    """thorough profile, float32 zoo member: a sigmoid of -118 is 0 in float32 (5e-52 in float64),
    so the relu unit it feeds has z = 0 exactly there and 8e-52 in the reference. Which side that
    unit is on is the dtype's to choose: a kink, not a wrong gradient (was rel err 0.11)."""
    from properties.checks import Context, run_check
    from properties.strategies import case_of
    from reference.spec import Layer, NetworkSpec
    spec = NetworkSpec(8, (Layer(6, "abs"), Layer(5, "sigmoid"), Layer(10, "relu"), Layer(8, "identity"),
                           Layer(1, "identity")), "hinge", dtype="float32")
    case = case_of(spec, 10, "large", True, 100001)
    impl = _float32_zoo_member()
    ctx = Context(impl, case)
    assert ctx.ref.on_kink >= 1
    v = run_check(ctx, "vs_jax")
    assert v.status == "passed" and v.n_kinks > 0, v.summary()
    # the same network in float64: nothing underflows, no unit is on a kink
    f64 = case_of(NetworkSpec(spec.n_in, spec.layers, spec.loss), 10, "large", True, 100001)
    assert Context(impl, f64).ref.on_kink == 0


def test_a_delta_below_the_smallest_normal_is_an_underflow_not_a_wrong_gradient():
    """thorough profile, the built-in: bce's output delta σ(-709) = 1.06e-308 is subnormal. NumPy
    keeps it, XLA on the CPU flushes it to zero; times the layer's input h = -472 it is a dC/dW of
    -5.0e-306 against the reference's 0 (was failed, rel err 1 vs bound 0.285). The underflow of a
    delta is carried down the backward pass like its other errors: nothing here is decidable."""
    from properties.strategies import case_of
    from implementations.numpy_mlp import builtin
    spec = NetworkSpec(16, (Layer(1, "identity"),) * 4, "bce")
    case = case_of(spec, 1, "large", False, 2)
    ctx = Context(builtin, case)
    g = ctx.impl_result[1]   # flat: the last layer's W[0, 0], then its b
    assert g[-2] < -1e-306 and ctx.ref.flat[-2] == 0.0   # the difference is real
    v = run_check(ctx, "vs_jax")
    assert v.status in ("passed", "not_checkable"), v.summary()
    # the term is the dtype's underflow level, nothing more: a delta of normal size stays decided
    m = errormodel.model(spec, case.params, case.X, case.Y)
    assert np.all(m.tol < 1e-300)


def test_jumps_that_cancel_across_samples_still_make_kink_entries():
    """thorough profile, float32 zoo member: four perceptron terms of ~1e-8 all sit on their kink
    in float32, and hidden unit 11 has W1 = 0, so its h is the same for every sample. With labels
    -1, 1, 1, -1 the all-left and all-right gradients of W2[0, 11] are both λW (the jumps -t h / N
    cancel); the member's mixed choice (three terms active) gives -2.3e-4. Was failed (rel err 1
    vs bound 1.35e-05): every entry a unit on a kink reaches is a kink entry."""
    from properties.strategies import case_of
    spec = NetworkSpec(1, (Layer(14, "identity"), Layer(1, "identity")), "perceptron", 0.1, "float32")
    case = case_of(spec, 4, "tiny", True, 1)
    ctx = Context(_float32_zoo_member(), case)
    entry = 14 + 14 + 11   # layer 2 W[0, 11] in the flat order
    assert ctx.ref.on_kink == 4 and ctx.ref.flat[entry] == ctx.ref.flat_other_side[entry]
    assert abs(ctx.impl_result[1][entry] - ctx.ref.flat[entry]) > 1e-4   # the difference is real
    assert ctx.kink_entries[entry]
    v = run_check(ctx, "vs_jax")
    assert v.status == "passed", v.summary()
    # what no unit on a kink reaches stays decided: W1 and b1 of the hidden units W2 gives no weight
    reach = errormodel.kink_reach(spec, case.params, case.X, [np.zeros((4, 14)), np.ones((4, 1))])
    W2 = case.params[1][0].ravel()
    assert not reach[:28][np.tile(W2 == 0, 2)].any() and reach[:28][np.tile(W2 != 0, 2)].all()


MANY_SPECS = [NetworkSpec(3, (Layer(5, "tanh"), Layer(4, "elu", alpha=0.3), Layer(3, "identity")), "softmax_ce", 0.1),
              NetworkSpec(4, (Layer(3, "maxout", pieces=3), Layer(2, "sigmoid")), "bce", 0.0, "float32"),
              NetworkSpec(2, (Layer(6, "relu"), Layer(1, "softplus")), "hinge", 1e-3)]


@pytest.mark.parametrize("spec", MANY_SPECS, ids=lambda s: s.describe())
def test_a_draws_model_among_many_is_the_one_it_gets_alone(spec):
    """model_many (the draws of one Hypothesis example in one pass) gives each draw exactly the
    model it gets alone, in its dtype and in float64: a reproducer rerunning one case finds the
    suite's bounds bit for bit."""
    rng = np.random.default_rng(7)
    cases = []
    for k in range(6):
        params = params_for(spec, rng, (1.0, 8.0, 1e-3)[k % 3], zeros=k % 2 == 1)
        cases.append((params, rng.standard_normal((5, spec.n_in)), targets(spec, rng, 5)))
    for dtype in {spec.dtype, "float64"}:
        many = errormodel.model_many(spec, *zip(*cases), dtype)
        assert len(many) == len(cases)
        for (params, X, Y), m in zip(cases, many):
            alone = errormodel.model(spec, params, X, Y, dtype)
            assert m.cost_tol == alone.cost_tol
            for field in ("tol", "A", "zfwd_out"):
                np.testing.assert_array_equal(getattr(m, field), getattr(alone, field))
            for field in ("delta_tol", "z_err", "h_err"):
                for a, b in zip(getattr(m, field), getattr(alone, field), strict=True):
                    np.testing.assert_array_equal(a, b)
