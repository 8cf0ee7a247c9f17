"""The seeds' training rules as properties, for the implementation under test (issue 5): one GD
step is theta - eta grad C exactly; a minibatch step uses the mean of per-sample gradients; a
batch of all N samples gives the GD step; the cost falls along -grad C at rate ||grad C||^2;
logistic regression does not go uphill with eta <= 1/L; seed 003's SVM (sub)gradient agrees
with JAX off the hinge and lies between the one-sided derivatives on it.
See properties/training_checks.py for the error model of each."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.control import current_build_context

from properties import training_checks as tc
from properties.strategies import cases_for, skip_undeclared, undeclared

# One hidden layer, widths <= 8, batches <= 16: every drawn network fits one JAX shape bucket
# (one compile per entry point). Maxout is left to the gradient checks (its pieces would add
# buckets); the rules under test do not depend on the activation.
MAX_N = 16
LEARNING_RATES = st.sampled_from([1.0, 0.1, 1e-3, 3.0])


NETWORK_BATCH = st.integers(1, MAX_N)
NETWORKS = dict(dtypes=("float64",), exclude={"maxout"})   # the narrowing, for the gate and the draw


def network_cases(impl):
    """Networks inside the declaration (one hidden layer at most, float64, no maxout)."""
    return cases_for(impl.capabilities, **NETWORKS, max_hidden=1, max_width=8, max_in=8, batch=NETWORK_BATCH)


def _networks_declared(impl, record) -> None:
    """Skips the test (one not_checkable verdict) where the declaration has no such network."""
    skip_undeclared(impl, record, tc.CHECK, undeclared(impl.capabilities, **NETWORKS))


def _record(record, v):
    if v.ok or current_build_context().is_final:  # shrinking's intermediate failures are not results
        record(v)
    assert v.ok, v.explain()


def test_gd_step_is_exact(impl, record):
    _networks_declared(impl, record)

    @given(case=network_cases(impl), lr=LEARNING_RATES)
    def prop(case, lr):
        _record(record, tc.check_gd_step(impl, case, lr))
    prop()


def test_minibatch_step_uses_the_mean_of_per_sample_gradients(impl, record):
    _networks_declared(impl, record)

    @settings(max_examples=max(settings().max_examples // 2, 10))   # M + 2 gradient calls each
    @given(case=network_cases(impl), lr=LEARNING_RATES, data=st.data())
    def prop(case, lr, data):
        n = case.X.shape[0]
        order = data.draw(st.permutations(range(n)), label="order")
        batch = order[:data.draw(st.integers(1, n), label="batch size")]
        _record(record, tc.check_minibatch(impl, case, lr, batch))
    prop()


def test_full_batch_step_is_the_gd_step(impl, record):
    _networks_declared(impl, record)

    @given(case=network_cases(impl), lr=LEARNING_RATES, data=st.data())
    def prop(case, lr, data):
        order = data.draw(st.permutations(range(case.X.shape[0])), label="order")
        _record(record, tc.check_full_batch(impl, case, lr, order))
    prop()


def test_cost_falls_along_minus_gradient_at_the_first_order_rate(impl, record):
    _networks_declared(impl, record)

    @given(case=network_cases(impl))
    def prop(case):
        _record(record, tc.check_first_order(impl, case))
    prop()


# --- linear models (seed 003) ---------------------------------------------------------------------

@st.composite
def logistic_cases(draw, max_d: int = 7):
    """(X, y, w, b, fraction): Gaussian data at a drawn scale, a Gaussian starting point and
    the step as a fraction of 1/L (1 is the edge of the guarantee)."""
    d, n = draw(st.integers(1, max_d), label="d"), draw(st.integers(1, MAX_N), label="N")
    scale = draw(st.sampled_from([1.0, 4.0, 0.25]), label="scale")
    fraction = draw(st.sampled_from([1.0, 0.5, 0.125]), label="eta L")
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    X = rng.standard_normal((n, d)) * scale
    return X, rng.choice([-1.0, 1.0], n), rng.standard_normal(d), float(rng.standard_normal()), fraction


@st.composite
def svm_cases(draw, max_d: int = 7, lambdas=(0.0, 0.125, 0.5)):
    """(X, y, w, b, lam): off the hinge, Gaussian data; on the hinge, small integers with some
    samples placed exactly on it (w has a +-1 coordinate j0, so x_j0 can be solved for
    w.x + b = y exactly) — every margin is then an exact integer."""
    d, n = draw(st.integers(1, max_d), label="d"), draw(st.integers(1, MAX_N), label="N")
    lam = draw(st.sampled_from(lambdas), label="lambda")
    hinge = draw(st.booleans(), label="on the hinge")
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    y = rng.choice([-1.0, 1.0], n)
    if not hinge:
        return rng.standard_normal((n, d)) * 2, y, rng.standard_normal(d), float(rng.standard_normal()), lam
    w = rng.integers(-2, 3, d).astype(float)
    j0 = int(rng.integers(d))
    w[j0] = rng.choice([-1.0, 1.0])
    b = float(rng.integers(-2, 3))
    X = rng.integers(-3, 4, (n, d)).astype(float)
    on = rng.random(n) < 0.5
    on[int(rng.integers(n))] = True
    for i in np.flatnonzero(on):
        X[i, j0] = 0.0
        X[i, j0] = (y[i] - b - X[i] @ w) / w[j0]
    return X, y, w, b, lam


def test_logistic_step_within_one_over_L_does_not_increase_the_cost(impl, record):
    skip_undeclared(impl, record, tc.CHECK, impl.capabilities.supports(tc.linear_spec(1, "logistic")))
    grad = tc.linear_gradient(impl, "logistic")

    @given(case=logistic_cases())
    def prop(case):
        _record(record, tc.check_logistic_descent(grad, *case))
    prop()


def test_svm_subgradient_off_and_on_the_hinge(impl, record):
    # lambda > 0 only where the regularizer is declared (the gate decides on the spec the check builds)
    caps = impl.capabilities
    skip_undeclared(impl, record, tc.CHECK, caps.supports(tc.linear_spec(1, "hinge")))
    regularized = caps.supports(tc.linear_spec(1, "hinge", 1.0)) is None
    grad = tc.linear_gradient(impl, "hinge")

    @given(case=svm_cases(lambdas=(0.0, 0.125, 0.5) if regularized else (0.0,)))
    def prop(case):
        _record(record, tc.check_svm_subgradient(grad, *case))
    prop()
