"""The reference perceptron (seed 003) and Novikoff's bound decided exactly."""
from __future__ import annotations

import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

from implementations.numpy_mlp import builtin
from implementations.protocol import Capabilities
from properties.perceptron_checks import BOUND, check_bound, check_nonseparable, perceptron_undeclared
from properties.perceptron_strategies import SeparableCase, xor_case
from reference.perceptron import (augment, dyadic, margin, novikoff_bound, novikoff_budget,
                                  radius_squared, separates, train_perceptron)
from reference.spec import SpecError
from reference.verdict import ERROR, NOT_CHECKABLE, PASSED

E10 = np.eye(10)
ONES10 = np.ones(10)
W_UNIT10 = np.ones(10) / math.sqrt(10)     # the unit separator, as a float vector


def seed_perceptron(x, y, nb_epochs_max):
    """Seed 003's train_perceptron, transcribed line by line (numpy for torch), as an oracle
    for the reference's vectorized search; also returns the number of updates."""
    w = np.zeros(x.shape[1])
    k = 0
    for e in range(nb_epochs_max):
        nb_changes = 0
        for i in range(x.shape[0]):
            if x[i].dot(w) * y[i] <= 0:
                w = w + y[i] * x[i]
                nb_changes = nb_changes + 1
        k += nb_changes
        if nb_changes == 0:
            break
    return w, k


def test_tight_case_d10_makes_exactly_d_updates_and_bound_is_exactly_d():
    r = train_perceptron(E10, ONES10, 100)
    assert (r.updates, r.passes, r.converged) == (10, 2, True)
    assert r.mistakes == tuple(range(10))
    np.testing.assert_array_equal(r.w, ONES10)
    bound = novikoff_bound(E10, ONES10, W_UNIT10)
    assert bound == Fraction(10) and r.k <= bound
    assert novikoff_budget(bound) == 11


def test_float_trap_9_999999999999998_is_judged_exactly():
    R = float(np.sqrt(np.max(np.sum(E10 ** 2, axis=1))))
    gamma = float(np.min(E10 @ W_UNIT10))          # y = 1 throughout
    naive = (R / gamma) ** 2
    assert naive == 9.999999999999998               # the value
    k = train_perceptron(E10, ONES10, 100).updates
    assert k == 10
    assert not k <= naive                           # the naive float check misjudges the tight case
    assert k <= novikoff_bound(E10, ONES10, W_UNIT10)   # the exact one does not
    assert gamma == margin(E10, ONES10, W_UNIT10)


def test_bound_does_not_depend_on_the_separators_norm():
    for w in (ONES10, W_UNIT10, 3 * ONES10, ONES10 / 1024):
        assert novikoff_bound(E10, ONES10, w) == 10


@pytest.mark.parametrize("d", [1, 2, 3, 7, 20])
def test_unit_vector_family_is_tight_so_off_by_one_bounds_are_caught(d):
    X, y = np.eye(d), np.where(np.arange(d) % 2, -1.0, 1.0)
    bound = novikoff_bound(X, y, y)
    r = train_perceptron(X[::-1], y[::-1], d + 1)     # any order
    assert bound == d == r.updates
    assert not r.updates <= bound - 1               # a bound one too small rejects the reference


def test_seed_form_4R2_over_gamma_s2_agrees_with_R_over_gamma_squared():
    """Seed 003 assumes y (x . w*) >= gamma_s / 2 with ||w*|| = 1: gamma_s = 2 gamma."""
    rng = np.random.default_rng(3)
    X = rng.integers(-5, 6, (30, 4)).astype(float)
    w = np.array([1.0, -2.0, 0.5, 3.0])
    y = np.sign(X @ w)
    keep = y != 0
    X, y = X[keep], y[keep]
    m = min(Fraction(float(v)) for v in y * (X @ w))            # exact: small dyadics
    gamma2 = m * m / Fraction(float(w @ w))                       # ||w||^2 exact here
    gamma_s2 = 4 * gamma2                                          # gamma_s = 2 gamma
    assert 4 * radius_squared(X) / gamma_s2 == novikoff_bound(X, y, w) == radius_squared(X) / gamma2


def test_reference_matches_the_seeds_loop_on_exact_data():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n, d = rng.integers(1, 40), rng.integers(1, 6)
        X = rng.integers(-4, 5, (n, d)).astype(float)
        y = rng.choice([-1.0, 1.0], n)
        budget = int(rng.integers(1, 20))
        r = train_perceptron(X, y, budget)
        w, k = seed_perceptron(X, y, budget)
        np.testing.assert_array_equal(r.w, w)
        assert r.updates == k == len(r.mistakes)


def test_xor_ends_at_the_budget_not_converged():
    X = augment(np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]))
    y = np.array([-1.0, 1.0, 1.0, -1.0])
    r = train_perceptron(X, y, 1000)
    assert not r.converged and r.passes == 1000 and r.updates >= 1000
    assert "did not converge within 1000 passes" in r.describe()
    assert not separates(X, y, r.w)[0]


def test_zero_sample_never_converges():
    """y (w . 0) = 0 <= 0 is a mistake at every pass: no strict separation exists."""
    r = train_perceptron(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([1.0, 1.0]), 5)
    assert not r.converged and r.passes == 5
    assert r.mistakes == (0, 1, 0, 0, 0, 0)     # both at w = 0, then the zero sample every pass


def test_augment_appends_the_bias_column():
    np.testing.assert_array_equal(augment([[2.0], [3.0]]), [[2.0, 1.0], [3.0, 1.0]])


def test_separation_is_decided_exactly():
    """Float evaluation of w . x rounds 1e16 + 1 - 1e16 to 0; exactly it is 1 > 0."""
    X, y, w = np.array([[1e16, 1.0, -1e16]]), np.array([1.0]), np.array([1.0, 1.0, 1.0])
    assert float(X[0] @ w) == 0.0
    assert separates(X, y, w) == (True, None)
    assert separates(X, -y, w) == (False, 0)


def test_dyadic_is_exact():
    vals = np.array([0.1, -3.5, 1e-300, 2.0 ** 60, 0.0, 5e-324])
    P, s = dyadic(vals)
    assert [Fraction(int(p), 1 << s) for p in P] == [Fraction(float(v)) for v in vals]


@pytest.mark.parametrize("args, culprit", [
    ((np.ones(3), np.ones(3), 5), "X: expected a 2-d array"),
    ((np.ones((3, 2)), np.array([1.0, 0.0, 1.0]), 5), "y: labels must be -1 or 1, got [0.0]"),
    ((np.ones((3, 2)), np.ones(2), 5), "y: expected shape (3,)"),
    ((np.ones((3, 2)), np.ones((3, 1)), 5), "y: expected shape (3,)"),
    ((np.full((3, 2), np.nan), np.ones(3), 5), "X: contains NaN or inf"),
    ((np.ones((0, 2)), np.ones(0), 5), "X: expected at least one sample"),
    ((np.ones((3, 2)), np.ones(3), 0), "max_epochs: must be a positive integer, got 0"),
    ((np.ones((3, 2)), np.ones(3), True), "max_epochs: must be a positive integer, got True"),
    ((np.ones((3, 2)), np.ones(3), 2.5), "max_epochs: must be a positive integer, got 2.5"),
])
def test_bad_input_is_one_line_naming_the_culprit(args, culprit):
    with pytest.raises(SpecError) as e:
        train_perceptron(*args)
    assert str(e.value).startswith(culprit.split(":")[0] + ":") and culprit in str(e.value)
    assert "\n" not in str(e.value)


def test_bound_names_a_bad_separator():
    with pytest.raises(SpecError, match=r"^w_star: expected shape \(10,\)"):
        novikoff_bound(E10, ONES10, np.ones(3))
    with pytest.raises(SpecError, match=r"^w_star: does not separate .* at sample 0"):
        novikoff_bound(E10, ONES10, -ONES10)
    with pytest.raises(SpecError, match=r"^w_star: does not separate"):
        novikoff_bound(E10, ONES10, np.zeros(10))


# --- the checks' plumbing ---------------------------------------------------------------------

def _impl(perceptron, name="stub"):
    return SimpleNamespace(name=name, capabilities=Capabilities(perceptron=True), perceptron=perceptron)


def test_bound_verdict_reports_k_bound_and_ratio():
    v = check_bound(builtin, SeparableCase(E10, ONES10, W_UNIT10, "tight e_i d=10", expected_k=10))
    assert v.status == PASSED and v.check == "perceptron_tight"
    assert (v.extra["k"], v.extra["bound"], v.extra["ratio"], v.extra["bound_exact"]) == (10, 10.0, 1.0, "10")


@pytest.mark.parametrize("perceptron, says", [
    (lambda X, y, n: 1 / 0, "perceptron() raised ZeroDivisionError"),
    (lambda X, y, n: None, "without w, updates, converged"),
    (lambda X, y, n: SimpleNamespace(w=np.zeros(3), updates=1, converged=True), "w of shape (3,)"),
    (lambda X, y, n: SimpleNamespace(w=np.zeros(10), updates=-1, converged=True), "updates=-1"),
    (lambda X, y, n: SimpleNamespace(w=np.zeros(10), updates=1, converged="yes"), "converged='yes'"),
])
def test_unusable_results_are_errors_not_failures(perceptron, says):
    v = check_bound(_impl(perceptron), SeparableCase(E10, ONES10, ONES10, "tight e_i d=10", expected_k=10))
    assert v.status == ERROR and says in v.message


def test_xor_check_says_it_did_not_converge():
    v = check_nonseparable(builtin, xor_case(50))
    assert v.status == PASSED and "did not converge within 50 passes" in v.message
    assert v.extra["k"] >= 50 and v.extra["converged"] is False


def test_undeclared_perceptron_is_recorded_not_checkable_then_skipped():
    from properties.test_perceptron import _property
    got = []
    impl = SimpleNamespace(name="no-perceptron", capabilities=Capabilities(perceptron=False))
    with pytest.raises(pytest.skip.Exception, match="^not declared: perceptron$"):
        _property(impl, "x", got.append, BOUND)
    assert [(v.check, v.status, v.message) for v in got] == [(BOUND, NOT_CHECKABLE, "not declared: perceptron")]
    declared_without_method = SimpleNamespace(name="p", capabilities=Capabilities(perceptron=True))
    assert perceptron_undeclared(declared_without_method) == "perceptron (declared, but no perceptron() method)"
    assert perceptron_undeclared(builtin) is None
