"""A deliberately buggy student implementation, to see what a failure report looks like:

    backcheck check --impl examples/buggy_student.py:StudentMLP

The bug is a classic: the sigmoid's derivative written as h (1 - h) but applied to the
pre-activation z, i.e. z (1 - z) instead of s(z) (1 - s(z)). Networks without a sigmoid
layer pass; every network with one fails, in that layer's W and b and in all layers below it.

The output leads with the diagnosis, once for the whole run (examples/README.md shows it):
"student-mlp: activation derivative (sigmoid) — σ'(z) is written as z(1 − z): the output form
h(1 − h) applied to z in every sigmoid layer", the blocks that are wrong and right, the
conditions ("wrong on every network with a sigmoid layer, right on every other"), the
confidence, and one reproducer that runs from any folder and prints the wrong block entry by
entry. The HTML report (backcheck-report/report.html) opens on the same words.
"""
from __future__ import annotations

import numpy as np

from implementations.protocol import Capabilities


class StudentMLP:
    name = "student-mlp"
    capabilities = Capabilities(activations={"identity", "tanh", "sigmoid", "relu"}, losses={"mse"},
                                layer_kinds={"dense"}, dtypes={"float64"}, regularizer=True)

    def gradients(self, spec, params, X, Y):
        hs, zs = [X], []
        for layer, (W, b) in zip(spec.layers, params):
            z = hs[-1] @ W.T + b
            zs.append(z)
            if layer.activation == "sigmoid":
                hs.append(1.0 / (1.0 + np.exp(-z)))
            elif layer.activation == "tanh":
                hs.append(np.tanh(z))
            elif layer.activation == "relu":
                hs.append(np.maximum(z, 0.0))
            else:
                hs.append(z)
        N = X.shape[0]
        cost = 0.5 * np.sum((hs[-1] - Y) ** 2) / N + 0.5 * spec.l2 * sum(np.sum(W * W) for W, _ in params)
        g = (hs[-1] - Y) / N
        grads = [None] * spec.depth
        for k in reversed(range(spec.depth)):
            act, z, h = spec.layers[k].activation, zs[k], hs[k + 1]
            if act == "sigmoid":
                g = g * z * (1 - z)          # BUG: should be h * (1 - h)
            elif act == "tanh":
                g = g * (1 - h ** 2)
            elif act == "relu":
                g = g * (z > 0)
            W = params[k][0]
            grads[k] = (g.T @ hs[k] + spec.l2 * W, g.sum(axis=0))
            g = g @ W
        return cost, grads
