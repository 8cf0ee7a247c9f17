"""backcheck's own hand-written backprop, in NumPy, with no autodiff anywhere.

It follows seed 002's forward and backward steps (batched over the rows of X):

    forward:   h0 = x;  z^k = W^k h^{k-1} + b^k;  h^k = f(z^k);  J = L(t, y = h^l)
    backward:  g <- dJ/dy;  for k = l..1:  g <- g * f'(z^k)   (this g is seed 000's B^k)
                                           dJ/db^k = g,  dJ/dW^k = g h^{k-1}^T
                                           g <- W^k^T g    (seed 000's P^k)

Derivatives are written in forms that stay accurate where units saturate: sigmoid' as
s(z) s(-z) and tanh' as sech^2 z computed directly, never 1 - h^2 or h (1 - h).
"""
from __future__ import annotations

import numpy as np

from implementations.protocol import Capabilities, Intermediates
from reference.spec import NetworkSpec, check_batch, check_params


# --- activations: value and derivative as functions of the pre-activation z -------------

def sigmoid(z):
    e = np.exp(-np.abs(z))                     # never overflows
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(z):
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def sech2(z):
    e = np.exp(-2.0 * np.abs(z))
    return 4.0 * e / (1.0 + e) ** 2


def activation(name: str, a: float, z):
    """(f(z), f'(z)) for a dense activation; a is the layer's parameter (Layer.param)."""
    if name == "identity":
        return z, np.ones_like(z)
    if name in ("relu", "leaky_relu", "abs", "generalized_relu"):
        # seed 004's generalized ReLU max(0, z) + a * min(0, z); f'(0) taken as a (left side)
        return np.maximum(z, 0) + a * np.minimum(z, 0), np.where(z > 0, 1.0, a).astype(z.dtype)
    if name == "sigmoid":
        return sigmoid(z), sigmoid(z) * sigmoid(-z)
    if name == "tanh":
        return np.tanh(z), sech2(z)
    if name == "softplus":
        return softplus(z), sigmoid(z)
    if name == "elu":
        neg = np.minimum(z, 0)
        return np.where(z > 0, z, a * np.expm1(neg)), np.where(z > 0, 1.0, a * np.exp(neg)).astype(z.dtype)
    raise ValueError(f"unknown activation {name!r}")


def maxout(z, k: int):
    """z (N, m*k) -> h (N, m) and the 0/1 mask of the winning piece (first on ties)."""
    zg = z.reshape(z.shape[0], -1, k)
    win = np.argmax(zg, axis=2)
    mask = np.zeros_like(zg)
    np.put_along_axis(mask, win[..., None], 1.0, axis=2)
    return zg.max(axis=2), mask.reshape(z.shape)


# --- losses: per-sample loss (summed over output units) and its derivative in yhat --------

def loss(name: str, y, t):
    """(loss per sample (N,), dloss/dy (N, n_out)) for outputs y and targets t."""
    if name == "mse":
        return 0.5 * ((t - y) ** 2).sum(1), y - t
    if name == "l1":
        return np.abs(t - y).sum(1), np.sign(y - t)
    if name == "logistic":
        return softplus(-t * y).sum(1), -t * sigmoid(-t * y)
    if name == "perceptron":
        return np.maximum(0, -t * y).sum(1), np.where(t * y < 0, -t, 0.0)
    if name == "hinge":
        return np.maximum(0, 1 - t * y).sum(1), np.where(t * y < 1, -t, 0.0)
    if name == "bce":
        s = 1 - 2 * t
        return softplus(s * y).sum(1), s * sigmoid(s * y)
    if name == "softmax_ce":
        m = y.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(y - m).sum(1))
        p = np.exp(y - lse[:, None])
        return lse * t.sum(1) - (t * y).sum(1), p * t.sum(1, keepdims=True) - t
    raise ValueError(f"unknown loss {name!r}")


# --- the network -------------------------------------------------------------------------

class NumpyMLP:
    """The built-in implementation under test (see module docstring)."""

    name = "numpy-builtin"
    capabilities = Capabilities.everything(intermediates=True, perceptron=True)  # any parameter of every activation

    def act(self, k: int, layer, z):
        """Layer k's activation and its derivative at z (mutants override this)."""
        if layer.activation == "maxout":
            return maxout(z, layer.pieces)
        return activation(layer.activation, layer.param, z)

    def loss(self, name: str, y, t):
        """Per-sample loss and dloss/dy (mutants override this)."""
        return loss(name, y, t)

    def forward(self, spec: NetworkSpec, params, X):
        """Pre-activations z^k, activations h^k (h[0] = X) and local derivatives f'(z^k)."""
        zs, hs, ds = [], [X], []
        for k, (layer, (W, b)) in enumerate(zip(spec.layers, params)):
            z = hs[-1] @ W.T + b
            h, d = self.act(k, layer, z)
            zs.append(z), hs.append(h), ds.append(d)
        return zs, hs, ds

    def cost(self, spec: NetworkSpec, params, X, Y) -> float:
        _, hs, _ = self.forward(spec, params, X)
        per_sample, _ = self.loss(spec.loss, hs[-1], Y)
        reg = 0.5 * spec.l2 * sum((W * W).sum() for W, _ in params)
        return per_sample.mean() + reg

    def _backward(self, spec, params, X, Y):
        check_batch(spec, X, Y)
        params = check_params(spec, params)
        zs, hs, ds = self.forward(spec, params, X)
        per_sample, g = self.loss(spec.loss, hs[-1], Y)
        N = X.shape[0]
        g = g / N                                       # the cost is the batch mean
        grads, deltas = [None] * spec.depth, [None] * spec.depth
        for k in reversed(range(spec.depth)):
            layer, (W, _) = spec.layers[k], params[k]
            if layer.activation == "maxout":
                g = np.repeat(g, layer.pieces, axis=1)  # route dJ/dh to every piece ...
            g = g * ds[k]                               # ... and keep the winner's (B^k)
            deltas[k] = g
            gW = g.T @ hs[k] + spec.l2 * W
            grads[k] = (gW, g.sum(axis=0))
            g = g @ W                                   # dJ/dh^{k-1} (P^k)
        cost = per_sample.mean() + 0.5 * spec.l2 * sum((W * W).sum() for W, _ in params)
        return cost, grads, Intermediates(zs, hs[1:], deltas)

    def gradients(self, spec: NetworkSpec, params, X, Y):
        cost, grads, _ = self._backward(spec, params, X, Y)
        return cost, grads

    def intermediates(self, spec: NetworkSpec, params, X, Y) -> Intermediates:
        return self._backward(spec, params, X, Y)[2]

    def perceptron(self, X, y, max_epochs: int):
        from reference.perceptron import train_perceptron
        return train_perceptron(X, y, max_epochs)


# --- the seeds' training rules ------------------------------------------------------------

def gd_step(params, grads, lr: float):
    """theta <- theta - eta * grad (seeds 000 and 001)."""
    return [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(params, grads)]


def train_step(impl, spec, params, X, Y, lr: float, batch=None):
    """One step of GD (batch=None: the whole set), SGD (batch = one index) or minibatch
    (batch = indices): the gradient is the mean over the chosen samples (seed 001)."""
    if batch is not None:
        idx = np.atleast_1d(np.asarray(batch))
        X, Y = X[idx], Y[idx]
    _, grads = impl.gradients(spec, params, X, Y)
    return gd_step(params, grads, lr)


builtin = NumpyMLP()
