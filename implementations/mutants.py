"""Deliberately wrong backprops: each a small, named change of the built-in NumPy implementation.

A property that no mutant fails proves nothing; tests/test_mutants.py shows that the suite
catches every one of these and never the correct implementation. Each mutant is a classic bug
somebody writing gradients by hand actually makes.
"""
from __future__ import annotations

import numpy as np

from implementations.numpy_mlp import NumpyMLP, sigmoid


class _Mutant(NumpyMLP):
    """A mutant changes `act`/`loss` (what the backward pass uses) or post-processes gradients."""
    bug = ""

    @property
    def name(self):
        return f"mutant:{type(self).__name__}"

    def fix_grads(self, spec, params, X, grads):
        return grads

    def _backward(self, spec, params, X, Y):
        cost, grads, inter = super()._backward(spec, params, X, Y)
        return cost, self.fix_grads(spec, params, X, grads), inter


class SignFlip(_Mutant):
    bug = "every gradient has the wrong sign (descends uphill)"

    def fix_grads(self, spec, params, X, grads):
        return [(-gW, -gb) for gW, gb in grads]


class MissingActivationDerivative(_Mutant):
    bug = "layer 1 forgets to multiply by f'(z) in the backward pass"

    def act(self, k, layer, z):
        h, d = super().act(k, layer, z)
        return h, (np.ones_like(d) if k == 0 else d)


class TransposedWeightGradient(_Mutant):
    bug = "dW computed as h^T g and reshaped to W's shape (a transpose lost in the layout)"

    def fix_grads(self, spec, params, X, grads):
        return [(np.ascontiguousarray(gW.T).reshape(gW.shape), gb) for gW, gb in grads]


class LayerOffByOne(_Mutant):
    bug = "the backward loop stops one layer early: layer 1's gradients are never filled in"

    def fix_grads(self, spec, params, X, grads):
        return [(np.zeros_like(grads[0][0]), np.zeros_like(grads[0][1]))] + grads[1:]


class BiasSummedNotAveraged(_Mutant):
    bug = "bias gradients summed over the batch instead of averaged"

    def fix_grads(self, spec, params, X, grads):
        return [(gW, gb * X.shape[0]) for gW, gb in grads]


class MissingOneOverN(_Mutant):
    bug = "the 1/N of the batch mean is missing from every gradient (cost still averaged)"

    def fix_grads(self, spec, params, X, grads):
        N = X.shape[0]
        return [((gW - spec.l2 * W) * N + spec.l2 * W, gb * N) for (gW, gb), (W, _) in zip(grads, params)]


class WrongSoftmaxDerivative(_Mutant):
    bug = "softmax cross-entropy: the softmax in dC/dz is normalized over the batch axis"

    def loss(self, name, y, t):
        per_sample, g = super().loss(name, y, t)
        if name == "softmax_ce":
            e = np.exp(y - y.max())
            g = e / e.sum(axis=0, keepdims=True) - t
        return per_sample, g


class MissingRegularizerTerm(_Mutant):
    bug = "the weight-decay term l2 * W is left out of dW"

    def fix_grads(self, spec, params, X, grads):
        return [(gW - spec.l2 * W, gb) for (gW, gb), (W, _) in zip(grads, params)]


class WrongLeakySlope(_Mutant):
    bug = "leaky ReLU derivative uses slope 0.01 for z < 0 whatever the layer's slope"

    def act(self, k, layer, z):
        h, d = super().act(k, layer, z)
        if layer.activation == "leaky_relu":
            d = np.where(z > 0, 1.0, 0.01).astype(z.dtype)
        return h, d


class SigmoidDerivativeAtActivation(_Mutant):
    bug = "sigmoid' evaluated at the activation h = s(z) instead of at the pre-activation z"

    def act(self, k, layer, z):
        h, d = super().act(k, layer, z)
        if layer.activation == "sigmoid":
            d = sigmoid(h) * (1 - sigmoid(h))
        return h, d


class TanhDerivativeOfPreactivation(_Mutant):
    bug = "tanh' written as 1 - z² instead of 1 - tanh(z)²"

    def act(self, k, layer, z):
        h, d = super().act(k, layer, z)
        if layer.activation == "tanh":
            d = 1 - z * z
        return h, d


class Float32Accumulation(_Mutant):
    bug = "a float64 network whose backward pass accumulates in float32"

    def _backward(self, spec, params, X, Y):
        cost, _, inter = super()._backward(spec, params, X, Y)
        s32 = spec.with_(dtype="float32")
        p32 = [(W.astype(np.float32), b.astype(np.float32)) for W, b in params]
        _, g32, _ = NumpyMLP._backward(self, s32, p32, X.astype(np.float32), Y.astype(np.float32))
        return cost, [(gW.astype(X.dtype), gb.astype(X.dtype)) for gW, gb in g32], inter


class SwappedLayerGradients(_Mutant):
    bug = "the gradients of layers 1 and 2 are returned in each other's place"

    def fix_grads(self, spec, params, X, grads):
        if len(grads) < 2:
            return grads
        return [grads[1], grads[0]] + grads[2:]


class MseDerivativeSign(_Mutant):
    bug = "MSE derivative written t - y instead of y - t"

    def loss(self, name, y, t):
        per_sample, g = super().loss(name, y, t)
        return per_sample, (t - y if name == "mse" else g)


class ScaledByOnePlusMicro(_Mutant):
    bug = "every gradient scaled by 1 + 1e-6 (a constant folded in slightly wrong): only a bound that was never loosened sees it"

    def fix_grads(self, spec, params, X, grads):
        return [(gW * (1 + 1e-6), gb * (1 + 1e-6)) for gW, gb in grads]


class SingleEntryOff(_Mutant):
    bug = "one entry, layer 1 W[0,0], off by 1e-3 times the largest gradient entry (an indexing slip in one place)"

    def fix_grads(self, spec, params, X, grads):
        top = max(max(np.abs(gW).max(initial=0), np.abs(gb).max(initial=0)) for gW, gb in grads)
        gW = grads[0][0].copy()
        gW[0, 0] += 1e-3 * (top if top > 0 else 1.0)
        return [(gW, grads[0][1])] + grads[1:]


MUTANTS = {cls.__name__: cls for cls in _Mutant.__subclasses__()}


def get(name: str) -> NumpyMLP:
    return MUTANTS[name]()
