"""The training-rule checks: the seeds' formulas and the built-in pass, and each rule's check
fails on a mutant of what it checks (a wrong step rule, a wrong gradient, a wrong formula)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings

from implementations.mutants import get as gradient_mutant
from implementations.numpy_mlp import NumpyMLP, builtin, gd_step, train_step
from properties import profiles
from properties import training_checks as tc
from properties.checks import Case
from properties.test_training import logistic_cases, svm_cases
from reference.spec import init_params, mlp, random_batch
from reference.verdict import ERROR, FAILED, NOT_CHECKABLE, PASSED

profiles.register()
CI = settings(settings.get_profile("ci"))


def network_case(seed=0, n=6, acts=("tanh", "identity"), loss="mse", l2=0.1, widths=(4, 2)) -> Case:
    rng = np.random.default_rng(seed)
    spec = mlp(3, list(widths), list(acts), loss, l2)
    X, Y = random_batch(spec, rng, n)
    return Case.make(spec, init_params(spec, rng), X, Y, f"fixed seed={seed}")


def linear_data(seed=0, n=12, d=3, scale=1.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) * scale, rng.choice([-1.0, 1.0], n), rng.standard_normal(d),
            float(rng.standard_normal()))


# --- step rules: exact GD, minibatch mean, full batch ------------------------------------------

def ascent_step(impl, spec, params, X, Y, lr, batch=None):
    """Mutant rule: theta + eta grad C."""
    return train_step(impl, spec, params, X, Y, -lr, batch)


def lr_over_n_step(impl, spec, params, X, Y, lr, batch=None):
    """Mutant rule: the learning rate divided by N on top of the mean (a double average)."""
    return train_step(impl, spec, params, X, Y, lr / X.shape[0], batch)


def summed_minibatch_step(impl, spec, params, X, Y, lr, batch=None):
    """Mutant rule: eta * sum of the minibatch's gradients instead of their mean."""
    m = X.shape[0] if batch is None else len(np.atleast_1d(batch))
    return train_step(impl, spec, params, X, Y, lr * m, batch)


def first_sample_step(impl, spec, params, X, Y, lr, batch=None):
    """Mutant rule: a batch of indices uses only its first sample (SGD by mistake)."""
    return train_step(impl, spec, params, X, Y, lr, None if batch is None else np.atleast_1d(batch)[:1])


def test_gd_step_is_bitwise_for_the_rule_and_fails_for_mutant_rules():
    case = network_case()
    assert tc.check_gd_step(builtin, case, 0.3).status == PASSED
    for rule in (ascent_step, lr_over_n_step):
        v = tc.check_gd_step(builtin, case, 0.3, step=rule)
        assert v.status == FAILED and "bit for bit" in v.message, rule.__name__


def test_gd_step_needs_reproducible_gradients():
    class Drifting(NumpyMLP):
        calls = 0

        def gradients(self, spec, params, X, Y):
            self.calls += 1
            cost, grads = super().gradients(spec, params, X, Y)
            return cost, [(gW * (1 + 1e-12 * self.calls), gb) for gW, gb in grads]
    v = tc.check_gd_step(Drifting(), network_case(), 0.1)
    # the validation layer asks every implementation for reproducible results: an error, named
    assert v.status == "error" and "non-deterministic" in v.message


def test_gd_step_of_a_reassociating_implementation_is_bitwise_against_the_gradient_it_gave_the_step():
    """Sums in a new order on every call (a scalar engine walking a set): the step is still
    theta - eta g bit for bit with g what the implementation returned to the rule, and a wrong
    rule still fails. A rule that gets its gradient elsewhere is held to the implementation's g
    within the reassociation bound."""
    from implementations.registry import load
    shuffled = load("tests/plugins/nondeterministic_order.py:IMPL")
    case = network_case()
    v = tc.check_gd_step(shuffled, case, 0.3)
    assert v.status == PASSED and "bit for bit" in v.message and "gave it to the step" in v.message
    v = tc.check_gd_step(shuffled, case, 0.3, step=lr_over_n_step)
    assert v.status == FAILED

    def builtin_gradient_step(impl, spec, params, X, Y, lr, batch=None):
        return train_step(builtin, spec, params, X, Y, lr, batch)
    v = tc.check_gd_step(shuffled, case, 0.3, step=builtin_gradient_step)
    assert v.status == PASSED and "reassociation" in v.message


def test_gd_step_when_only_the_steps_own_gradient_call_sums_differently():
    """thorough profile, the scalar-engine zoo member (6 -> 5:relu -> 2:relu | mse, l2=0.1): its
    set order changes on some calls only. The probes before and after the step agreed, the step's
    own gradient call did not (by 1 ulp): was failed, 'not theta - eta grad C bit for bit'."""
    class OnceReordered(NumpyMLP):
        name = "once-reordered"
        reorder = False

        def gradients(self, spec, params, X, Y):
            cost, grads = super().gradients(spec, params, X, Y)
            if self.reorder:   # this call only: its largest entry summed to 4 ulp more
                self.reorder = False
                (gW, gb), *rest = grads
                gW = gW.copy()
                i = np.argmax(np.abs(gW))
                gW.flat[i] += 4 * np.spacing(gW.flat[i])
                grads = [(gW, gb)] + rest
            return cost, grads

    def the_rule(impl, spec, params, X, Y, lr, batch=None):
        impl.reorder = True   # the step's own gradient call is the one that sums differently
        return train_step(impl, spec, params, X, Y, lr, batch)
    case = network_case()
    v = tc.check_gd_step(OnceReordered(), case, 3.0, step=the_rule)
    assert v.status == PASSED, v.summary()
    def ascent(impl, spec, params, X, Y, lr, batch=None):
        impl.reorder = True
        return ascent_step(impl, spec, params, X, Y, lr, batch)
    assert tc.check_gd_step(OnceReordered(), case, 3.0, step=ascent).status == FAILED


def test_minibatch_mean_passes_and_catches_sums():
    case = network_case(n=8)
    batch = [5, 0, 3]
    assert tc.check_minibatch(builtin, case, 0.5, batch).status == PASSED
    assert tc.check_minibatch(builtin, case, 0.5, batch, step=summed_minibatch_step).status == FAILED
    assert tc.check_minibatch(gradient_mutant("MissingOneOverN"), case, 0.5, batch).status == FAILED


def test_full_batch_passes_and_catches_a_rule_using_one_sample():
    case = network_case(n=5)
    order = [3, 1, 4, 0, 2]
    assert tc.check_full_batch(builtin, case, 0.5, order).status == PASSED
    assert tc.check_full_batch(builtin, case, 0.5, order, step=first_sample_step).status == FAILED
    with pytest.raises(ValueError, match=r"^order: expected a permutation"):
        tc.check_full_batch(builtin, case, 0.5, [0, 0, 1, 2, 3])


def test_a_raising_implementation_is_an_error_not_a_failure():
    class Raises(NumpyMLP):
        def gradients(self, *a):
            raise RuntimeError("boom")
    for v in (tc.check_gd_step(Raises(), network_case(), 0.1), tc.check_first_order(Raises(), network_case())):
        assert v.status == ERROR and "boom" in v.message


# --- first order: C(theta - eta g) = C(theta) - eta ||g||^2 + O(eta^2) ----------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_first_order_passes_for_the_builtin(seed):
    v = tc.check_first_order(builtin, network_case(seed))
    assert v.status == PASSED and v.extra["rule"] == "first_order", v.explain()


@pytest.mark.parametrize("mutant", ["SignFlip", "MissingActivationDerivative", "MissingOneOverN"])
def test_first_order_catches_gradients_wrong_in_direction_or_size(mutant):
    v = tc.check_first_order(gradient_mutant(mutant), network_case(0))
    assert v.status == FAILED, v.explain()


def test_first_order_is_not_checkable_where_elu_second_derivative_jumps():
    """elu (alpha = 1) is C^1 but elu'' jumps at 0: a unit at z = 1e-9 sits inside the stencil,
    which the reference's kink detection reports (elu's 0 counts as a kink for FD purposes)."""
    spec = mlp(1, [1, 1], ["elu", "identity"], "mse")
    case = Case.make(spec, [(np.array([[1.0]]), np.array([0.0])), (np.array([[2.0]]), np.array([0.5]))],
                     np.array([[1e-9]]), np.array([[3.0]]), "elu at its C^2 break")
    v = tc.check_first_order(builtin, case)
    assert v.status == NOT_CHECKABLE and "kink" in v.message


# --- logistic regression (seed 003) -----------------------------------------------------------------

def logistic_sign_mutant(X, y, w, b):
    """sigma(+y s) where the seed has sigma(-y s)."""
    u = y * tc.sigmoid(y * (X @ w + b))
    return -(X * u[:, None]).sum(0) / len(y), -u.sum() / len(y)


def logistic_ascent(X, y, w, b):
    gw, gb = tc.logistic_gradient_seed(X, y, w, b)
    return -gw, -gb


def logistic_summed(X, y, w, b):
    """The seed's sum over samples, not divided by N: the step is N times too long."""
    gw, gb = tc.logistic_gradient_seed(X, y, w, b)
    return gw * len(y), gb * len(y)


def test_seed_logistic_formula_equals_jax_and_descends():
    seen = []

    @CI
    @given(case=logistic_cases())
    def prop(case):
        X, y, w, b, fraction = case
        v = tc.check_logistic_gradient(tc.logistic_gradient_seed, X, y, w, b)
        assert v.status == PASSED, v.explain()
        v = tc.check_logistic_descent(tc.logistic_gradient_seed, X, y, w, b, fraction)
        assert v.ok, v.explain()
        seen.append(v.status)
    prop()
    assert seen.count(PASSED) > len(seen) // 2     # mostly decided, not waved through


def test_logistic_gradient_check_catches_the_sign_mutant():
    assert tc.check_logistic_gradient(logistic_sign_mutant, *linear_data()).status == FAILED


@pytest.mark.parametrize("grad", [logistic_ascent, logistic_summed])
def test_logistic_descent_catches_uphill_and_overlong_steps(grad):
    X, y, w, b = linear_data(n=16, scale=4.0)
    assert tc.check_logistic_descent(tc.logistic_gradient_seed, X, y, w, b, 1.0).status == PASSED
    v = tc.check_logistic_descent(grad, X, y, w, b, 1.0)
    assert v.status == FAILED and v.extra["cost_after"] > v.extra["cost_before"], v.explain()


# --- SVM (seed 003): off the hinge vs JAX, on the hinge between one-sided derivatives ----------------

def svm_half_regularizer(X, y, w, b, lam):
    """lambda w where the derivative of lambda ||w||^2 is 2 lambda w."""
    gw, gb = tc.svm_subgradient_seed(X, y, w, b, lam)
    return gw - lam * w, gb


def svm_wrong_side_at_hinge(X, y, w, b, lam):
    """A sample exactly on the hinge contributes +y x, outside [min(0, -y x), max(0, -y x)]."""
    gw, gb = tc.svm_subgradient_seed(X, y, w, b, lam)
    on = y * (X @ w + b) == 1
    return gw + (y[on, None] * X[on]).sum(0) / len(y), gb + y[on].sum() / len(y)


def hinge_case():
    X = np.array([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0], [-2.0, 1.0]])
    y = np.array([1.0, -1.0, 1.0, -1.0])
    w, b = np.array([1.0, 0.0]), 0.0      # margins 1 (on), 0, 3, 2
    return X, y, w, b


def test_seed_svm_subgradient_passes_off_and_on_the_hinge():
    rules = []

    @CI
    @given(case=svm_cases())
    def prop(case):
        v = tc.check_svm_subgradient(tc.svm_subgradient_seed, *case)
        assert v.ok, v.explain()
        rules.append((v.extra["rule"], v.status))
    prop()
    assert ("svm_subgradient on the hinge", PASSED) in rules and ("svm_subgradient off the hinge", PASSED) in rules


def test_svm_off_hinge_catches_the_regularizer_mutant():
    X, y, w, b = linear_data()
    v = tc.check_svm_subgradient(svm_half_regularizer, X, y, w, b, 0.5)
    assert v.status == FAILED and v.extra["rule"] == "svm_subgradient off the hinge"


def test_svm_on_hinge_catches_the_wrong_side_which_off_hinge_data_cannot():
    X, y, w, b = hinge_case()
    assert tc.on_hinge(X, y, w, b) == 1
    assert tc.check_svm_subgradient(tc.svm_subgradient_seed, X, y, w, b, 0.25).status == PASSED
    v = tc.check_svm_subgradient(svm_wrong_side_at_hinge, X, y, w, b, 0.25)
    assert v.status == FAILED and "outside the one-sided derivatives" in v.message
    assert tc.check_svm_subgradient(svm_wrong_side_at_hinge, *linear_data(), 0.25).status == PASSED


def test_one_sided_derivatives_by_hand():
    """C = (1/2) [max(0, 1 - (w + b)) + max(0, 1 + 2w + b)] at w = 1, b = 0: sample 0 on the
    hinge (contributes [-1/2, 0] in w and in b), sample 1 active (1 in w, 1/2 in b)."""
    lo, hi = tc.one_sided_derivatives(np.array([[1.0], [2.0]]), np.array([1.0, -1.0]), np.array([1.0]), 0.0, 0.0)
    assert (lo, hi) == ([Fraction(1, 2), Fraction(0)], [Fraction(1), Fraction(1, 2)])


def test_svm_sample_within_rounding_of_the_hinge_is_not_checkable():
    """10 * fl(0.1) is 1 + 2^-54 exactly but 1.0 in float: either side is a correct answer."""
    X, y, w = np.array([[0.1]]), np.array([1.0]), np.array([10.0])
    assert float(X[0] @ w) == 1.0 and tc.on_hinge(X, y, w, 0.0) == 0
    v = tc.check_svm_subgradient(tc.svm_subgradient_seed, X, y, w, 0.0, 0.0)
    assert v.status == NOT_CHECKABLE and "within rounding of the hinge" in v.message


def test_gd_step_in_the_linear_checks_is_the_seed_rule():
    """check_logistic_descent steps with numpy_mlp.gd_step: theta - eta g."""
    params = [(np.array([[1.0, 2.0]]), np.array([0.5]))]
    grads = [(np.array([[0.5, -1.0]]), np.array([2.0]))]
    (W, b), = gd_step(params, grads, 0.5)
    assert W.tolist() == [[0.75, 2.5]] and b.tolist() == [-0.5]
