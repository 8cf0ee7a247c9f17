"""The classic book code (Nielsen, "Neural Networks and Deep Learning", network2.py style): one
sample at a time as column vectors, sigma'(z) = sigma(z)(1 - sigma(z)), tanh' = 1 - h^2 from the
layer's output, nabla_w / nabla_b accumulated over the batch then divided by N, the l2 term's
gradient added as lambda W. The output delta is the loss derivative in the book's form:
yhat - y (mse), sigma(yhat) - y (bce on a logit), softmax(yhat) - onehot (softmax_ce).

    backcheck check --impl tests/zoo/textbook_numpy.py:IMPL
"""
from __future__ import annotations

import numpy as np

from implementations.protocol import Capabilities, Intermediates


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


def softmax(z):
    e = np.exp(z - np.max(z))
    return e / np.sum(e)


# name -> (f(z), f'(z, a) with a = f(z))
ACTIVATIONS = {
    "identity": (lambda z: z, lambda z, a: np.ones_like(z)),
    "sigmoid": (sigmoid, lambda z, a: sigmoid_prime(z)),
    "tanh": (np.tanh, lambda z, a: 1 - a ** 2),
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
}


# name -> (loss of one sample (column vectors a, y), dloss/da)
LOSSES = {
    "mse": (lambda a, y: 0.5 * np.linalg.norm(a - y) ** 2, lambda a, y: a - y),
    "bce": (lambda a, y: float(np.sum(np.logaddexp(0, a) - y * a)), lambda a, y: sigmoid(a) - y),
    "softmax_ce": (lambda a, y: float(np.max(a) + np.log(np.sum(np.exp(a - np.max(a)))) - np.sum(y * a)),
                   lambda a, y: softmax(a) - y),
    "logistic": (lambda a, y: float(np.sum(np.logaddexp(0, -y * a))), lambda a, y: -y / (1 + np.exp(y * a))),
}


class Network:
    def __init__(self, spec, params):
        self.spec = spec
        self.weights = [W for W, _ in params]
        self.biases = [b.reshape(-1, 1) for _, b in params]
        self.acts = [layer.activation for layer in spec.layers]

    def backprop(self, x, y):
        """(loss, nabla_b, nabla_w, zs, activations, deltas) for one sample x, y (column vectors)."""
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation = x
        activations = [x]
        zs = []
        for b, w, act in zip(self.biases, self.weights, self.acts):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = ACTIVATIONS[act][0](z)
            activations.append(activation)
        loss, dloss = LOSSES[self.spec.loss]
        delta = dloss(activations[-1], y) * ACTIVATIONS[self.acts[-1]][1](zs[-1], activations[-1])
        deltas = [delta]
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, len(self.weights) + 1):
            z = zs[-l]
            sp = ACTIVATIONS[self.acts[-l]][1](z, activations[-l])
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            deltas.insert(0, delta)
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return loss(activations[-1], y), nabla_b, nabla_w, zs, activations[1:], deltas

    def batch(self, X, Y):
        n = len(X)
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        total, per_sample = 0.0, []
        for x, y in zip(X, Y):
            loss, delta_nabla_b, delta_nabla_w, *rest = self.backprop(x.reshape(-1, 1), y.reshape(-1, 1))
            total += loss
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
            per_sample.append(rest)
        lmbda = self.spec.l2
        cost = total / n + 0.5 * lmbda * sum(np.linalg.norm(w) ** 2 for w in self.weights)
        grads = [(nw / n + lmbda * w, (nb / n).ravel()) for nw, nb, w in zip(nabla_w, nabla_b, self.weights)]
        return cost, grads, per_sample


class Textbook:
    name = "zoo-textbook-numpy"
    capabilities = Capabilities(activations=set(ACTIVATIONS), losses=set(LOSSES), layer_kinds={"dense"},
                                dtypes={"float64"}, regularizer=True, intermediates=True)

    def gradients(self, spec, params, X, Y):
        cost, grads, _ = Network(spec, params).batch(X, Y)
        return cost, grads

    def intermediates(self, spec, params, X, Y):
        _, _, per_sample = Network(spec, params).batch(X, Y)
        n = len(X)
        field = lambda k, scale=1.0: [np.stack([s[k][j].ravel() for s in per_sample]) * scale  # noqa: E731
                                      for j in range(spec.depth)]
        return Intermediates(field(0), field(1), field(2, 1.0 / n))  # deltas of the batch MEAN cost


IMPL = Textbook()
