"""A micrograd-style scalar autodiff engine: every number a `Value` whose `_prev` is a SET of its
children, backward() by a topological sort walking those sets. Set order follows the objects'
ids, so the order in which a node's gradient contributions are summed changes from call to call
(the gradients agree to rounding, not bitwise). Slow, on purpose plain.

    backcheck check --impl tests/zoo/scalar_engine.py:IMPL

One departure from micrograd, which would be a bug of this code: its tanh is
(e^{2x} - 1) / (e^{2x} + 1), which raises OverflowError above x ~ 355; math.tanh here, and a
sigmoid that does not overflow either.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from implementations.protocol import Capabilities

# build_topo recurses along the longest chain of the graph, and the l2 term sums every weight
# in one chain (~1300 for the largest networks drawn): the usual fix, a higher limit
sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))


class Value:
    def __init__(self, data, _children=(), _op=""):
        self.data = data
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __pow__(self, other):
        assert isinstance(other, (int, float)), "only int/float powers"
        out = Value(self.data ** other, (self,), f"**{other}")

        def _backward():
            self.grad += (other * self.data ** (other - 1)) * out.grad
        out._backward = _backward
        return out

    def relu(self):
        out = Value(0 if self.data < 0 else self.data, (self,), "ReLU")

        def _backward():
            self.grad += (out.data > 0) * out.grad
        out._backward = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward():
            self.grad += (1 - t ** 2) * out.grad
        out._backward = _backward
        return out

    def sigmoid(self):
        x = self.data
        s = 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))
        out = Value(s, (self,), "sigmoid")

        def _backward():
            self.grad += s * (1 - s) * out.grad
        out._backward = _backward
        return out

    def backward(self):
        topo, visited = [], set()

        def build_topo(v):
            if v not in visited:
                visited.add(v)
                for child in v._prev:
                    build_topo(child)
                topo.append(v)
        build_topo(self)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()

    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __rmul__(self, other):
        return self * other


ACTIVATIONS = {"identity": lambda v: v, "tanh": Value.tanh, "relu": Value.relu, "sigmoid": Value.sigmoid}
LOSSES = {
    "mse": lambda yhat, y: sum(((p - t) ** 2 for p, t in zip(yhat, y)), Value(0.0)) * 0.5,
    "hinge": lambda yhat, y: sum(((1 - t * p).relu() for p, t in zip(yhat, y)), Value(0.0)),
}


class Neuron:
    def __init__(self, w, b, act):
        self.w, self.b, self.act = [Value(float(x)) for x in w], Value(float(b)), act

    def __call__(self, x):
        return ACTIVATIONS[self.act](sum((wi * xi for wi, xi in zip(self.w, x)), self.b))


class MLP:
    def __init__(self, spec, params):
        self.layers = [[Neuron(W[i], b[i], layer.activation) for i in range(layer.width)]
                       for layer, (W, b) in zip(spec.layers, params)]

    def __call__(self, x):
        for layer in self.layers:
            x = [n(x) for n in layer]
        return x


class ScalarEngine:
    name = "zoo-scalar-engine"
    capabilities = Capabilities(activations=set(ACTIVATIONS), losses=set(LOSSES), layer_kinds={"dense"},
                                dtypes={"float64"}, regularizer=True)

    def gradients(self, spec, params, X, Y):
        model = MLP(spec, params)
        losses = [LOSSES[spec.loss](model([float(v) for v in x]), [float(v) for v in y]) for x, y in zip(X, Y)]
        total = sum(losses, Value(0.0)) * (1.0 / len(X))
        if spec.l2:
            weights = (w for layer in model.layers for n in layer for w in n.w)
            total = total + sum((w * w for w in weights), Value(0.0)) * (0.5 * spec.l2)
        total.backward()
        grads = [(np.array([[w.grad for w in n.w] for n in layer]), np.array([n.b.grad for n in layer]))
                 for layer in model.layers]
        return total.data, grads


IMPL = ScalarEngine()
