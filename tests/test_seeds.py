"""The course notes' worked examples, with their exact values (the only hard-coded gradients)."""
import numpy as np
import pytest

from implementations.numpy_mlp import builtin, gd_step, train_step
from properties.checks import run_checks
from properties.fixed_cases import seed_002_case, xor_case
from reference import jax_ref
from reference.spec import Layer, NetworkSpec


def test_seed_001_gradient_descent_on_a_parabola():
    """f(w) = (w + 5)², eta = 0.02, w0 = 3: w1 = 2.68, w2 = 2.3728, w174 ≈ -4.9934, w175 ≈ -4.9937.
    As a network: one identity unit with weight w on input 1 and target -5 has cost ½(w + 5)²,
    so a GD step with eta' = 2 * eta on it is exactly the seed's step on (w + 5)²."""
    spec = NetworkSpec(1, (Layer(1, "identity"),), "mse")
    params = [(np.array([[3.0]]), np.array([0.0]))]
    X, Y = np.array([[1.0]]), np.array([[-5.0]])
    ws = [3.0]
    for _ in range(175):
        _, grads = builtin.gradients(spec, params, X, Y)
        grads = [(gW, np.zeros_like(gb)) for gW, gb in grads]  # the seed has no bias
        params = gd_step(params, grads, 2 * 0.02)
        ws.append(float(params[0][0][0, 0]))
    assert ws[1] == pytest.approx(2.68, abs=1e-15)
    assert ws[2] == pytest.approx(2.3728, abs=1e-15)
    assert round(ws[174], 4) == -4.9934
    assert round(ws[175], 4) == -4.9937


def test_seed_001_minibatch_is_the_mean_of_per_sample_gradients():
    rng = np.random.default_rng(3)
    spec = NetworkSpec(2, (Layer(3, "tanh"), Layer(1)), "mse")
    params = [(rng.standard_normal((3, 2)), rng.standard_normal(3)), (rng.standard_normal((1, 3)), rng.standard_normal(1))]
    X, Y = rng.standard_normal((6, 2)), rng.standard_normal((6, 1))
    batch = [1, 4, 5]
    stepped = train_step(builtin, spec, params, X, Y, 0.1, batch=batch)
    per_sample = [builtin.gradients(spec, params, X[[i]], Y[[i]])[1] for i in batch]
    mean = [(np.mean([g[j][0] for g in per_sample], axis=0), np.mean([g[j][1] for g in per_sample], axis=0))
            for j in range(2)]
    for (W, b), (gW, gb), (W1, b1) in zip(params, mean, stepped):
        np.testing.assert_allclose(W1, W - 0.1 * gW, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(b1, b - 0.1 * gb, rtol=1e-14, atol=1e-15)


def test_seed_004_xor_network_outputs_exactly_xor():
    case = xor_case()
    _, hs, _ = builtin.forward(case.spec, case.params, case.X)
    assert hs[1].tolist() == [[0, 0], [1, 0], [1, 0], [2, 1]]  # the seed's h
    assert hs[-1].ravel().tolist() == [0, 1, 1, 0]


def test_seed_004_xor_sits_on_the_relu_kink_and_is_reported_as_such():
    case = xor_case()
    ref = jax_ref.gradients(case.spec, case.params, case.X, case.Y)
    assert ref.on_kink == 3  # z = 0 for unit 1 at (0,0), unit 2 at (0,1) and (1,0)
    verdicts = {v.check: v for v in run_checks(builtin, case)}
    assert all(v.ok for v in verdicts.values()), [v.summary() for v in verdicts.values() if not v.ok]
    assert verdicts["vs_fd"].n_kinks > 0 and verdicts["directional"].status == "not_checkable"


def test_seed_004_normal_equations_linear_model():
    """w = 0, b = ½: J = ¼ Σ (f* - f)² = 0.25 (no ½ there); our mse is ½ (y - t)² per sample,
    so our cost is J / 2, and the gradient is exactly zero (the normal equations hold)."""
    case = xor_case()
    spec = NetworkSpec(2, (Layer(1, "identity"),), "mse")
    params = [(np.zeros((1, 2)), np.array([0.5]))]
    cost, grads = builtin.gradients(spec, params, case.X, case.Y)
    assert 2 * cost == 0.25
    assert all(not gW.any() and not gb.any() for gW, gb in grads)
    ref = jax_ref.gradients(spec, params, case.X, case.Y)
    assert 2 * ref.cost == 0.25 and not ref.flat.any()


def test_seed_002_nine_derivatives_by_hand():
    """The 2-2-1 example: ReLU hidden, linear output, J = ½ (t - y)². By the slide's formulas:
    g = y - t; dJ/db2 = g; dJ/dW2 = g h1ᵀ; g1 = W2ᵀ g ⊙ step(α1); dJ/db1 = g1; dJ/dW1 = g1 xᵀ."""
    case = seed_002_case()
    (W1, b1), (W2, b2) = case.params
    x, t = case.X[0], case.Y[0, 0]
    a1 = W1 @ x + b1                      # (0.3, -0.6): away from the kink
    h1 = np.maximum(a1, 0)
    y = W2[0] @ h1 + b2[0]
    g = y - t
    by_hand = {"W2": g * h1, "b2": g, "W1": np.outer(W2[0] * g * (a1 > 0), x), "b1": W2[0] * g * (a1 > 0)}
    assert by_hand["W1"].size + by_hand["W2"].size + 1 + by_hand["b1"].size == 9
    _, grads = builtin.gradients(case.spec, case.params, case.X, case.Y)
    ref = jax_ref.gradients(case.spec, case.params, case.X, case.Y)
    for got in (grads, ref.grads):
        np.testing.assert_allclose(got[0][0], by_hand["W1"], rtol=1e-14)
        np.testing.assert_allclose(got[0][1], by_hand["b1"], rtol=1e-14)
        np.testing.assert_allclose(got[1][0][0], by_hand["W2"], rtol=1e-14)
        np.testing.assert_allclose(got[1][1][0], by_hand["b2"], rtol=1e-14)
    verdicts = run_checks(builtin, case, ("vs_fd", "richardson", "slide_fd"))
    assert all(v.status == "passed" for v in verdicts), [v.summary() for v in verdicts]
