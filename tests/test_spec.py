"""The spec vocabulary: every malformed spec, parameter set or batch gets one clear error
naming the field."""
import numpy as np
import pytest

from reference.spec import (Layer, NetworkSpec, SpecError, check_batch, check_params, flatten, init_params, mlp,
                            one_hot, param_index, random_batch, unflatten)


def err(fn, *args, **kw):
    with pytest.raises(SpecError) as e:
        fn(*args, **kw)
    return str(e.value)


def test_malformed_specs_name_the_field():
    assert "n_in" in err(NetworkSpec, 0, (Layer(1),))
    assert "layers" in err(NetworkSpec, 2, ())
    assert "layers[0] (layer 1).width" in err(NetworkSpec, 2, (Layer(0, "relu"),))
    assert "layers[1] (layer 2).activation" in err(NetworkSpec, 2, (Layer(3, "tanh"), Layer(1, "swish")))
    assert "unknown loss 'cross'" in err(NetworkSpec, 2, (Layer(1),), "cross")
    assert "softmax_ce needs an output layer of width >= 2" in err(NetworkSpec, 2, (Layer(1),), "softmax_ce")
    assert "pieces" in err(NetworkSpec, 2, (Layer(2, "maxout", pieces=1), Layer(1)))
    assert "pieces" in err(NetworkSpec, 2, (Layer(2, "relu", pieces=2), Layer(1)))
    assert "alpha" in err(NetworkSpec, 2, (Layer(2, "tanh", alpha=0.3), Layer(1)))
    assert "l2" in err(NetworkSpec, 2, (Layer(1),), "mse", -1.0)
    assert "dtype" in err(NetworkSpec, 2, (Layer(1),), "mse", 0.0, "float16")
    assert "activations: 1 given for 2 layers" in err(mlp, 2, [3, 1], ["tanh"])


def test_malformed_batches_name_the_field():
    spec = mlp(3, [4, 1], ["tanh", "identity"], "logistic")
    X = np.zeros((5, 3))
    assert "X: shape (5, 2)" in err(check_batch, spec, np.zeros((5, 2)), np.ones((5, 1)))
    assert "Y: shape (5, 2)" in err(check_batch, spec, X, np.ones((5, 2)))
    assert "labels in {-1, 1}" in err(check_batch, spec, X, np.zeros((5, 1)))
    assert "labels in {0, 1}" in err(check_batch, spec.with_(loss="bce"), X, -np.ones((5, 1)))
    assert "NaN or inf" in err(check_batch, spec, X * np.nan, np.ones((5, 1)))
    assert "X: expected a numpy array" in err(check_batch, spec, [[0, 0, 0]], np.ones((1, 1)))
    sm = mlp(3, [4, 3], ["tanh", "identity"], "softmax_ce")
    assert "simplex" in err(check_batch, sm, X, np.ones((5, 3)))


def test_malformed_params_name_the_layer():
    spec = mlp(3, [4, 2], "tanh")
    p = init_params(spec, np.random.default_rng(0))
    assert "params: 1 layers given, the spec has 2" in err(check_params, spec, p[:1])
    bad = [p[0], (p[1][0].T, p[1][1])]
    assert "params[1] (layer 2) W: shape (4, 2), expected (2, 4)" in err(check_params, spec, bad)
    assert "layer 1) b: expected a numpy array" in err(check_params, spec, [(p[0][0], [0, 0, 0, 0]), p[1]])


def test_shapes_flatten_and_index_roundtrip():
    spec = NetworkSpec(3, (Layer(2, "maxout", pieces=3), Layer(2, "relu")), "mse")
    assert spec.shapes() == [((6, 3), (6,)), ((2, 2), (2,))]
    p = init_params(spec, np.random.default_rng(1))
    theta = flatten(p)
    assert theta.size == spec.n_params == 6 * 3 + 6 + 4 + 2
    for (W, b), (W2, b2) in zip(p, unflatten(spec, theta)):
        assert np.array_equal(W, W2) and np.array_equal(b, b2)
    assert param_index(spec, 0) == (1, "W", (0, 0))
    assert param_index(spec, 18) == (1, "b", (0,))
    assert param_index(spec, 24) == (2, "W", (0, 0))
    assert param_index(spec, spec.n_params - 1) == (2, "b", (1,))


def test_spec_roundtrips_through_dict_and_code():
    spec = NetworkSpec(3, (Layer(2, "maxout", pieces=3), Layer(4, "leaky_relu", alpha=0.3), Layer(2)),
                       "softmax_ce", 0.1, "float32")
    assert NetworkSpec.from_dict(spec.to_dict()) == spec
    assert eval(spec.repr_code()) == spec
    assert Layer(1, "abs").param == -1.0 and Layer(1, "leaky_relu").param == 0.1 and Layer(1, "elu").param == 1.0


def test_random_batches_respect_the_loss_domain():
    rng = np.random.default_rng(0)
    for loss in ("logistic", "bce", "softmax_ce", "mse"):
        spec = mlp(2, [3, 3 if loss in ("softmax_ce", "mse") else 1], "tanh", loss)
        X, Y = random_batch(spec, rng, 7)
        check_batch(spec, X, Y)  # raises if invalid
    assert one_hot([0, 2], 3).tolist() == [[1, 0, 0], [0, 0, 1]]
