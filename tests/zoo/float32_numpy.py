"""A batched NumPy backprop computing in float32 throughout (every array, product, sum and
constant), declared for float32 only. tanh' and sigmoid' from the layer's output, the other
derivatives from z; numerically stable losses (no cancellation in their derivatives).

    backcheck check --impl tests/zoo/float32_numpy.py:IMPL
"""
from __future__ import annotations

import numpy as np

from implementations.protocol import ANY, Capabilities

F32 = np.float32
ONE = F32(1)


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, ONE / (ONE + e), e / (ONE + e))


def _softplus(z):
    return np.maximum(z, F32(0)) + np.log1p(np.exp(-np.abs(z)))


def _rectifier(alpha):
    """max(0, z) + alpha min(0, z): relu (0), leaky_relu, abs (-1), generalized_relu."""
    a = F32(alpha)
    return lambda z: (np.where(z > 0, z, a * z), np.where(z > 0, ONE, a))


def _elu(alpha):
    a = F32(alpha)

    def f(z):
        e = np.exp(np.minimum(z, F32(0)))
        return np.where(z > 0, z, a * np.expm1(np.minimum(z, F32(0)))), np.where(z > 0, ONE, a * e)
    return f


def _tanh(z):
    h = np.tanh(z)
    return h, ONE - h * h


def _sig(z):
    h = _sigmoid(z)
    return h, h * (ONE - h)


def activation(layer):
    """z -> (f(z), f'(z)) for the layer's activation at its parameter."""
    act = layer.activation
    if act in ("relu", "leaky_relu", "abs", "generalized_relu"):
        return _rectifier(layer.param)
    if act == "elu":
        return _elu(layer.param)
    return {"identity": lambda z: (z, np.ones_like(z)), "tanh": _tanh, "sigmoid": _sig,
            "softplus": lambda z: (_softplus(z), _sigmoid(z))}[act]


def loss(name, y, t):
    """(per-sample loss summed over outputs (N,), dloss/dy (N, K)) in float32."""
    if name == "mse":
        r = y - t
        return F32(0.5) * np.sum(r * r, axis=1), r
    if name == "l1":
        return np.sum(np.abs(y - t), axis=1), np.sign(y - t)
    if name == "logistic":
        m = -t * y
        return np.sum(_softplus(m), axis=1), -t * _sigmoid(m)
    if name == "perceptron":
        m = -t * y
        return np.sum(np.maximum(m, F32(0)), axis=1), np.where(m > 0, -t, F32(0))
    if name == "hinge":
        m = ONE - t * y
        return np.sum(np.maximum(m, F32(0)), axis=1), np.where(m > 0, -t, F32(0))
    if name == "bce":  # softplus(s y) with s = 1 - 2t: derivative s sigmoid(s y), no cancellation
        s = ONE - F32(2) * t
        return np.sum(_softplus(s * y), axis=1), s * _sigmoid(s * y)
    if name == "softmax_ce":
        m = np.max(y, axis=1, keepdims=True)
        e = np.exp(y - m)
        se = np.sum(e, axis=1, keepdims=True)
        mass = np.sum(t, axis=1, keepdims=True)   # 1 for one-hot rows
        return (m + np.log(se))[:, 0] * mass[:, 0] - np.sum(t * y, axis=1), e / se * mass - t
    raise ValueError(name)


class Float32Numpy:
    name = "zoo-float32-numpy"
    capabilities = Capabilities(activations={"identity": None, "relu": None, "leaky_relu": ANY, "abs": None,
                                             "generalized_relu": ANY, "sigmoid": None, "tanh": None,
                                             "softplus": None, "elu": ANY},
                                losses={"mse", "l1", "logistic", "perceptron", "hinge", "bce", "softmax_ce"},
                                layer_kinds={"dense"}, dtypes={"float32"}, regularizer=True)

    def gradients(self, spec, params, X, Y):
        assert X.dtype == F32 and all(W.dtype == F32 for W, _ in params), "float32 only"
        n = F32(X.shape[0])
        hs, ds = [X], []
        for layer, (W, b) in zip(spec.layers, params):
            h, d = activation(layer)(hs[-1] @ W.T + b)
            hs.append(h), ds.append(d)
        per_sample, dy = loss(spec.loss, hs[-1], Y)
        l2 = F32(spec.l2)
        cost = np.mean(per_sample) + F32(0.5) * l2 * sum(np.sum(W * W) for W, _ in params)
        grads = []
        g = dy / n
        for k in reversed(range(spec.depth)):
            delta = g * ds[k]
            W = params[k][0]
            grads.append((delta.T @ hs[k] + l2 * W, np.sum(delta, axis=0)))
            g = delta @ W
        return F32(cost), grads[::-1]


IMPL = Float32Numpy()
