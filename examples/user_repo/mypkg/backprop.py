"""A user's own backprop, in backcheck's conventions, so it needs no adapter:
W (n_out, n_in), b (n_out,), X (N, n_in), cost = mean over the batch + l2/2 sum ||W||^2.

Checked from this folder with

    pytest --pyargs properties --impl mypkg.backprop:MLP
"""
from __future__ import annotations

import numpy as np

from implementations.protocol import Capabilities


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _act(name, z):
    """(f(z), f'(z))"""
    if name == "tanh":
        e = np.exp(-2.0 * np.abs(z))
        return np.tanh(z), 4.0 * e / (1.0 + e) ** 2
    if name == "sigmoid":
        return _sigmoid(z), _sigmoid(z) * _sigmoid(-z)
    if name == "relu":
        return np.maximum(z, 0.0), (z > 0).astype(z.dtype)
    return z, np.ones_like(z)


class MLP:
    name = "mypkg-mlp"
    capabilities = Capabilities(activations={"identity", "tanh", "sigmoid", "relu"}, losses={"mse"},
                                layer_kinds={"dense"}, dtypes={"float64", "float32"}, regularizer=True)

    def gradients(self, spec, params, X, Y):
        hs, ds = [X], []
        for layer, (W, b) in zip(spec.layers, params):
            h, d = _act(layer.activation, hs[-1] @ W.T + b)
            hs.append(h), ds.append(d)
        n, l2 = X.shape[0], spec.l2
        cost = 0.5 * np.sum((hs[-1] - Y) ** 2) / n + 0.5 * l2 * sum(np.sum(W * W) for W, _ in params)
        g, grads = (hs[-1] - Y) / n, [None] * len(params)
        for k in reversed(range(len(params))):
            W = params[k][0]
            g = g * ds[k]
            grads[k] = (g.T @ hs[k] + l2 * W, g.sum(axis=0))
            g = g @ W
        return float(cost), grads
