"""No pass that could not have failed: an entry whose bound is 1/2 or more is undecided (the
relative error is at most 1, so such a bound could only catch a sign flip), a verdict without a
decided entry is not_checkable, and every passed verdict of every check had a bound at which it
could fail."""
import numpy as np
import pytest

from implementations.numpy_mlp import builtin
from properties.checks import GRADIENT_CHECKS, Context, run_check
from properties.strategies import params_for, targets
from properties.checks import Case
from reference.compare import VACUOUS_BOUND, compare
from reference.spec import Layer, NetworkSpec
from reference.verdict import FAILED, NOT_CHECKABLE, PASSED


def test_only_vacuous_bounds_is_not_checkable():
    v = compare("vs_jax", None, [1e-20, 0.0], [-3e-21, 0.0], [1.8e7, 3.6e22])
    assert v.status == NOT_CHECKABLE and v.n_undecided == 2
    assert "1/2" in v.message


def test_vacuous_entries_are_undecided_the_rest_decides():
    a, b = np.array([1.0, 2.0, 1e-20]), np.array([1.0, 2.0 + 1e-9, -1e-20])
    v = compare("vs_jax", None, a, b, [1e-12, 1e-12, 10.0])
    assert v.status == FAILED and v.n_undecided == 1 and v.extra["undecided_vacuous"] == 1
    v = compare("vs_jax", None, a, b, [1e-12, 1e-8, 10.0])
    assert v.status == PASSED and v.max_error < 1e-8 and v.bound < VACUOUS_BOUND


def test_nan_bound_never_passes_silently():
    v = compare("vs_jax", None, [1.0], [1.0], [np.nan])
    assert v.status == NOT_CHECKABLE


def _raw_cases():
    """Raw inputs where bounds get wide: saturated units, huge scales, exact zeros, λ > 0."""
    specs = [NetworkSpec(3, (Layer(4, "sigmoid"), Layer(2, "identity")), "bce", l2=0.1).with_(
                 layers=(Layer(4, "sigmoid"), Layer(1, "identity"))),
             NetworkSpec(4, (Layer(5, "tanh"), Layer(5, "relu"), Layer(3, "identity")), "softmax_ce"),
             NetworkSpec(2, (Layer(3, "elu", alpha=0.3), Layer(1, "identity")), "logistic", l2=1e-3)]
    out = []
    for spec in specs:
        for seed, scale, zeros in ((0, 40.0, True), (1, 8.0, False), (2, 1.0, True)):
            rng = np.random.default_rng(seed)
            params = params_for(spec, rng, scale, zeros)
            out.append(Case.make(spec, params, rng.standard_normal((5, spec.n_in)) * scale, targets(spec, rng, 5)))
    return out


@pytest.mark.parametrize("case", _raw_cases(), ids=lambda c: c.describe())
def test_every_passed_verdict_could_have_failed(case):
    ctx = Context(builtin, case, "builtin")
    for check in GRADIENT_CHECKS:
        v = run_check(ctx, check)
        assert v.ok, v.explain()
        if v.status == PASSED:
            assert v.n_entries - v.n_kinks - v.n_undecided >= 1
            assert v.bound is not None and v.bound < VACUOUS_BOUND, v.summary()
            assert v.worst_error is not None and v.worst_error < VACUOUS_BOUND, v.summary()


def test_directional_leaves_out_the_entries_no_check_can_decide():
    """float32 at a large scale: 63 of 71 entries have a rounding bound above their value. Summed
    into vᵀ∇C they made the check vacuous; left out of v, the other 8 decide it (and still see a
    sign flip), and the verdict's bound is one a wrong gradient can exceed."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from raw_cases import DIRECTIONAL_DILUTED as case
    from implementations import mutants
    from properties.checks import check_directional, direction
    from reference import fd, jax_ref

    ctx = Context(builtin, case, None)
    _, g = ctx.impl_result
    v = direction(g, case.direction_seed, ctx.kink_entries)       # v over every entry, as before
    *_, before = fd.directional_check(lambda ts: jax_ref.direction_costs(ctx.packed, v, ts), ctx.packed.theta, g,
                                      v, ctx.cost_error, scale=ctx.scale,
                                      analytic_error=float(np.abs(v) @ ctx.tolerances[0]), spec=ctx.spec)
    assert before.status == NOT_CHECKABLE and before.extra.get("undecided_vacuous") == 1
    after = run_check(ctx, "directional")
    assert after.status == PASSED and after.bound < VACUOUS_BOUND, after.summary()
    flipped = run_check(Context(mutants.get("SignFlip"), case, None), "directional")
    assert flipped.status == FAILED, flipped.summary()


def test_directional_with_no_decidable_entry_says_so():
    """Every entry's bound above its value (a tiny-scale float32 network): not_checkable, in words."""
    spec = NetworkSpec(3, (Layer(2, "tanh"), Layer(1, "identity")), "mse", dtype="float32")
    params = [(np.full((2, 3), 1e-30, np.float32), np.zeros(2, np.float32)),
              (np.full((1, 2), 1e-30, np.float32), np.zeros(1, np.float32))]
    X, Y = np.ones((2, 3), np.float32), np.zeros((2, 1), np.float32)
    v = run_check(Context(builtin, Case.make(spec, params, X, Y), None), "directional")
    assert v.status == NOT_CHECKABLE and "rounding bound as large as its value" in v.message, v.summary()
