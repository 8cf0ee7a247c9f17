"""A third-party MLP with its own conventions, standing for code you did not write.

It knows nothing about backcheck. Its conventions are the course slides', not backcheck's:

- weights Omega^j in R^{n_{j-1} x n_j}, so a layer maps row vectors: h^j = f(h^{j-1} Omega^j + b^j);
- the cost is summed over the samples, not averaged:
      J = sum_n 1/2 ||t_n - y_n||^2 + lam/2 sum_j ||Omega^j||^2.

plugin_adapted.py plugs it into backcheck with two adapters and no change here.
"""
from __future__ import annotations

import numpy as np


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sech2(z):
    e = np.exp(-2.0 * np.abs(z))
    return 4.0 * e / (1.0 + e) ** 2


# name -> (f(z), f'(z)); derivatives from z, which stays accurate where units saturate
ACTIVATIONS = {
    "identity": (lambda z: z, lambda z: np.ones_like(z)),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(z.dtype)),
    "tanh": (np.tanh, _sech2),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * _sigmoid(-z)),
}


class ThirdPartyMLP:
    def __init__(self, activations):
        self.activations = list(activations)

    def loss_and_grads(self, omegas, biases, X, T, lam=0.0):
        """J (summed over samples) and dJ/dOmega^j, dJ/db^j for a batch X (N, n_0), T (N, n_L)."""
        hs, zs = [X], []
        for omega, b, act in zip(omegas, biases, self.activations):
            zs.append(hs[-1] @ omega + b)
            hs.append(ACTIVATIONS[act][0](zs[-1]))
        err = hs[-1] - T
        J = 0.5 * np.sum(err ** 2) + 0.5 * lam * sum(np.sum(o * o) for o in omegas)
        d_omegas, d_biases = [None] * len(omegas), [None] * len(omegas)
        g = err
        for j in reversed(range(len(omegas))):
            g = g * ACTIVATIONS[self.activations[j]][1](zs[j])
            d_omegas[j] = hs[j].T @ g + lam * omegas[j]
            d_biases[j] = g.sum(axis=0)
            g = g @ omegas[j].T
        return J, d_omegas, d_biases
