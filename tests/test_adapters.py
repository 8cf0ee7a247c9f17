"""Adapters: the built-in wrapped through each foreign convention and back must agree with the
built-in to rounding (on gradients, cost and per-layer deltas, over a spread of networks), and
real code (the third-party example, scikit-learn's MLPRegressor._backprop) must agree with the
JAX reference. The property suite runs over the same objects with --impl (see adapted_builtin.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from implementations import adapters as A
from implementations.numpy_mlp import builtin
from implementations.protocol import Capabilities
from implementations.registry import load, resolve
from reference import jax_ref
from reference.spec import Layer, NetworkSpec, init_params, mlp, random_batch

ROOT = Path(__file__).resolve().parent.parent
ADAPTED = resolve(f"{ROOT}/tests/plugins/adapted_builtin.py:ALL")

SPECS = [  # a spread over the vocabulary: activations, losses, maxout, l2, float32, one layer
    mlp(3, [4, 2], ["tanh", "identity"], l2=0.1),
    mlp(2, [5, 3, 3], ["sigmoid", "relu", "identity"], loss="softmax_ce"),
    mlp(4, [3], ["identity"], loss="mse", l2=0.3),
    NetworkSpec(3, (Layer(4, "maxout", pieces=3), Layer(2, "elu", alpha=0.5), Layer(1, "identity")), loss="logistic",
                l2=0.05),
    mlp(3, [6, 2], ["softplus", "leaky_relu"], loss="bce", l2=0.2, dtype="float32"),
    mlp(2, [3, 2], ["abs", "identity"], loss="hinge"),
]


def _case(spec, seed=0, n=7):
    rng = np.random.default_rng(seed)
    return (spec, init_params(spec, rng), *random_batch(spec, rng, n))


def _close(a, b, dtype):
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * (np.max(np.abs(b)) if np.size(b) else 1))


@pytest.mark.parametrize("which", sorted(ADAPTED))
@pytest.mark.parametrize("spec", SPECS, ids=[s.describe() for s in SPECS])
def test_adapted_builtin_is_the_builtin(which, spec):
    impl = load(f"{ROOT}/tests/plugins/adapted_builtin.py:{which}")  # validated: types, dtypes, shapes
    case = _case(spec)
    cost, grads = impl.gradients(*case)
    ref_cost, ref_grads = builtin.gradients(*case)
    _close(cost, ref_cost, spec.dtype)
    for (gW, gb), (rW, rb) in zip(grads, ref_grads):
        _close(gW, rW, spec.dtype)
        _close(gb, rb, spec.dtype)
    assert impl.capabilities.intermediates  # every adapter translates them
    got, ref = impl.intermediates(*case), builtin.intermediates(*case)
    for field in ("pre_activations", "activations", "deltas"):
        for x, y in zip(getattr(got, field), getattr(ref, field)):
            _close(x, y, spec.dtype)


def test_adapted_builtin_isolated():
    """Adapters work the same in the worker process (they are what gets loaded there)."""
    impl = load(f"{ROOT}/tests/plugins/adapted_builtin.py:SUMMED", isolate=True)
    try:
        cases = [_case(s, seed=i) for i, s in enumerate(SPECS)]
        for out, case in zip(impl.gradients_many(cases), cases):
            _close(out[0], builtin.gradients(*case)[0], case[0].dtype)
    finally:
        impl.close()


def _vs_reference(impl, spec, seed=0):
    """(relative cost error, relative gradient error, tolerance) against JAX for networks of
    depth <= 2 (one shape bucket: one compile per process), against the built-in (itself checked
    against JAX by the property suite) for deeper ones, to keep these tests fast."""
    case = _case(spec, seed)
    cost, grads = impl.gradients(*case)
    if spec.depth <= 2:
        ref = jax_ref.gradients(*case)
        ref_cost, ref_flat = ref.cost, ref.flat
    else:
        ref_cost, ref_grads = builtin.gradients(*case)
        ref_flat = np.concatenate([np.concatenate([gW.ravel(), gb.ravel()]) for gW, gb in ref_grads])
    flat = np.concatenate([np.concatenate([gW.ravel(), gb.ravel()]) for gW, gb in grads]).astype(np.float64)
    tol = 1e-5 if spec.dtype == "float32" else 1e-12
    return abs(cost - ref_cost) / abs(ref_cost), float(np.max(np.abs(flat - ref_flat)) / np.max(np.abs(ref_flat))), tol


@pytest.mark.parametrize("spec", [
    mlp(3, [4, 2], ["tanh", "identity"], l2=0.1),
    mlp(2, [5, 5, 1], ["sigmoid", "sigmoid", "identity"]),
    mlp(4, [3, 3], ["relu", "identity"], l2=0.5),
], ids=lambda s: s.describe())
def test_third_party_example_passes(spec):
    impl = load(f"{ROOT}/examples/plugin_adapted.py:IMPL")
    cost_err, grad_err, tol = _vs_reference(impl, spec)
    assert cost_err < tol and grad_err < tol


SKLEARN_SPECS = [
    mlp(3, [4, 2], ["tanh", "identity"], l2=0.1),          # K = 2 outputs: the #8349 factor shows
    mlp(2, [5, 5, 3], ["sigmoid", "sigmoid", "identity"]),
    mlp(4, [6, 3], ["relu", "identity"], l2=0.5),
    mlp(3, [2], ["identity"], l2=0.2),                     # no hidden layer
    mlp(3, [4, 2], ["tanh", "identity"], l2=0.1, dtype="float32"),
]


@pytest.mark.parametrize("spec", SKLEARN_SPECS, ids=lambda s: s.describe())
def test_sklearn_mlpregressor_backprop_passes(spec):
    pytest.importorskip("sklearn")
    impl = load(f"{ROOT}/examples/sklearn_mlp.py:IMPL")
    assert impl.capabilities.supports(spec) is None
    for seed in range(3):
        cost_err, grad_err, tol = _vs_reference(impl, spec, seed)
        assert cost_err < tol and grad_err < tol, (seed, cost_err, grad_err)


def test_sklearn_loss_is_one_kth_of_its_gradients_function():
    """scikit-learn issue #8349: without loss_mean_over_outputs, the multi-output loss is off by
    the factor K in its data term, while the gradients are right."""
    pytest.importorskip("sklearn")
    inner = resolve(f"{ROOT}/examples/sklearn_mlp.py:IMPL").inner
    raw = A.SklearnStyle(inner)  # the layout adapter alone
    spec = SKLEARN_SPECS[0]
    case = _case(spec)
    cost, grads = raw.gradients(*case)
    ref = jax_ref.gradients(*case)
    reg = A.l2_term(spec, case[1])
    assert abs((cost - reg) * spec.n_out - (ref.cost - reg)) < 1e-12 * ref.cost
    assert abs(cost - ref.cost) > 0.1 * ref.cost
    np.testing.assert_allclose(grads[0][0], ref.grads[0][0], rtol=1e-12)


def test_sklearn_capabilities_declare_its_structure():
    pytest.importorskip("sklearn")
    caps = resolve(f"{ROOT}/examples/sklearn_mlp.py:IMPL").capabilities
    assert caps == Capabilities.sklearn_style(dtypes={"float64", "float32"})
    assert "hidden layers with different activations (tanh, relu" in caps.supports(
        mlp(3, [4, 4, 1], ["tanh", "relu", "identity"]))
    assert caps.supports(mlp(3, [4, 1], ["tanh", "tanh"])) == \
        "activation 'tanh' in the output layer (declared output: identity)"
    assert caps.supports(mlp(3, [4, 1], ["tanh", "identity"], loss="hinge")) == "loss 'hinge' (declared: mse)"
    unchecked = caps.unchecked()
    assert "hidden layers with different activations" in unchecked
    assert "output activations other than identity" in unchecked
    assert "activations leaky_relu, abs, generalized_relu, softplus, elu, maxout" in unchecked


def test_layered_capabilities_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match="LayeredCapabilities is deprecated"):
        from implementations.adapters import LayeredCapabilities
    old = LayeredCapabilities(activations={"tanh", "identity"}, losses={"mse"}, layer_kinds={"dense"},
                              output_activations={"identity"}, uniform_hidden=True)
    assert old == Capabilities.sklearn_style(hidden={"tanh", "identity"}, dtypes={"float64", "float32"})


def test_buggy_student_fails_where_its_bug_is():
    impl = load(f"{ROOT}/examples/buggy_student.py:StudentMLP")
    _, grad_err, tol = _vs_reference(impl, mlp(3, [4, 2], ["tanh", "identity"]))
    assert grad_err < tol  # no sigmoid: right
    _, grad_err, _ = _vs_reference(impl, mlp(3, [4, 2], ["sigmoid", "identity"]))
    assert grad_err > 1e-2  # sigmoid: z(1 - z) instead of h(1 - h)


def test_summed_cost_leaves_the_l2_term_undivided():
    """A summed cost with l2 > 0: dividing everything by N would shrink the regularizer too."""
    spec = mlp(3, [4, 2], ["tanh", "identity"], l2=0.7)
    case = _case(spec, n=9)
    cost, grads = ADAPTED["SUMMED"].gradients(*case)
    ref_cost, ref_grads = builtin.gradients(*case)
    naive = ADAPTED["SUMMED"].inner.gradients(*case)[0] / 9
    assert abs(cost - ref_cost) < 1e-12 * ref_cost and abs(naive - ref_cost) > 1e-3


def test_per_sample_function_gets_one_sample_and_no_l2():
    seen = []

    def per_sample(spec, params, x, y):
        seen.append((spec.l2, x.shape, y.shape))
        return builtin.gradients(spec, params, x[None], y[None])

    impl = A.PerSample(per_sample, capabilities=Capabilities())
    spec = mlp(3, [4, 2], ["tanh", "identity"], l2=0.4)
    case = _case(spec, n=5)
    cost, grads = impl.gradients(*case)
    assert seen == [(0.0, (3,), (2,))] * 5
    ref_cost, ref_grads = builtin.gradients(*case)
    assert abs(cost - ref_cost) < 1e-12 * ref_cost
    _close(grads[0][0], ref_grads[0][0], "float64")
    assert impl.name == "per-sample(per_sample)" and not impl.capabilities.intermediates


def test_flat_layout():
    spec = mlp(3, [4, 2], ["tanh", "identity"])
    inter = A.flat_layout(spec)
    assert [(j, w, s) for j, w, s, _ in inter] == [(1, "W", (4, 3)), (1, "b", (4,)), (2, "W", (2, 4)), (2, "b", (2,))]
    assert [o for *_, o in inter] == [0, 12, 16, 24]
    first = A.flat_layout(spec, "weights_first")
    assert [(j, w) for j, w, *_ in first] == [(1, "W"), (2, "W"), (1, "b"), (2, "b")]
    params = init_params(spec, np.random.default_rng(0))
    for order in ("interleaved", "weights_first"):
        back = A.from_flat(A.to_flat(params, order), spec, order)
        assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(back, params))
    with pytest.raises(ValueError, match="order must be 'interleaved' or 'weights_first'"):
        A.FlatVector(builtin, order="columns")


def test_adapter_needs_capabilities():
    with pytest.raises(TypeError, match=r"TransposedWeights: .* declares no capabilities; pass capabilities="):
        A.TransposedWeights(lambda spec, params, X, Y: None)
    with pytest.raises(TypeError, match="has no gradients"):
        A.SummedCost(object(), capabilities=Capabilities())
