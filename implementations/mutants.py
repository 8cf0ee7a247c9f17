"""Deliberately wrong backprops: each a small, named change of the built-in NumPy implementation.

A property that no mutant fails proves nothing; tests/test_mutants.py shows that the suite
catches every one of these and never the correct implementation. Each mutant is a classic bug
somebody writing gradients by hand actually makes.
"""
from __future__ import annotations

import numpy as np

from implementations.numpy_mlp import NumpyMLP, sigmoid


class _Mutant(NumpyMLP):
    """A mutant changes `act`/`loss` (what the backward pass uses) or post-processes gradients.

    What the diagnosis (properties.diagnosis) must say about it, checked by tests/test_diagnosis.py:
    `category` (one of diagnosis.CATEGORIES), `layers` (the 1-based layers it breaks, or None
    where that depends on the network), and for a bug of one activation or one loss its name."""
    bug = ""
    category = ""
    layers: tuple | None = None
    activation_name: str | None = None
    loss_name: str | None = None

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
    category, layers = "scale", None

    def fix_grads(self, spec, params, X, grads):
        return [(-gW, -gb) for gW, gb in grads]


class MissingActivationDerivative(_Mutant):
    bug = "layer 1 forgets to multiply by f'(z) in the backward pass"
    category, layers = "activation derivative", (1,)

    def act(self, k, layer, z):
        h, d = super().act(k, layer, z)
        return h, (np.ones_like(d) if k == 0 else d)


class TransposedWeightGradient(_Mutant):
    bug = "dW computed as h^T g and reshaped to W's shape (a transpose lost in the layout)"
    category, layers = "layer structure", None

    def fix_grads(self, spec, params, X, grads):
        return [(np.ascontiguousarray(gW.T).reshape(gW.shape), gb) for gW, gb in grads]


class LayerOffByOne(_Mutant):
    bug = "the backward loop stops one layer early: layer 1's gradients are never filled in"
    category, layers = "layer structure", (1,)

    def fix_grads(self, spec, params, X, grads):
        return [(np.zeros_like(grads[0][0]), np.zeros_like(grads[0][1]))] + grads[1:]


class BiasSummedNotAveraged(_Mutant):
    bug = "bias gradients summed over the batch instead of averaged"
    category, layers = "batch reduction", None

    def fix_grads(self, spec, params, X, grads):
        return [(gW, gb * X.shape[0]) for gW, gb in grads]


class MissingOneOverN(_Mutant):
    bug = "the 1/N of the batch mean is missing from every gradient (cost still averaged)"
    category, layers = "batch reduction", None

    def fix_grads(self, spec, params, X, grads):
        N = X.shape[0]
        return [((gW - spec.l2 * W) * N + spec.l2 * W, gb * N) for (gW, gb), (W, _) in zip(grads, params)]


class WrongSoftmaxDerivative(_Mutant):
    bug = "softmax cross-entropy: the softmax in dC/dz is normalized over the batch axis"
    category, layers = "loss gradient", None
    loss_name = "softmax_ce"

    def loss(self, name, y, t):
        per_sample, g = super().loss(name, y, t)
        if name == "softmax_ce":
            e = np.exp(y - y.max())
            g = e / e.sum(axis=0, keepdims=True) - t
        return per_sample, g


class MissingRegularizerTerm(_Mutant):
    bug = "the weight-decay term l2 * W is left out of dW"
    category, layers = "regularizer", None

    def fix_grads(self, spec, params, X, grads):
        return [(gW - spec.l2 * W, gb) for (gW, gb), (W, _) in zip(grads, params)]


class WrongLeakySlope(_Mutant):
    bug = "leaky ReLU derivative uses slope 0.01 for z < 0 whatever the layer's slope"
    category, layers = "activation derivative", None
    activation_name = "leaky_relu"

    def act(self, k, layer, z):
        h, d = super().act(k, layer, z)
        if layer.activation == "leaky_relu":
            d = np.where(z > 0, 1.0, 0.01).astype(z.dtype)
        return h, d


class SigmoidDerivativeAtActivation(_Mutant):
    bug = "sigmoid' evaluated at the activation h = s(z) instead of at the pre-activation z"
    category, layers = "activation derivative", None
    activation_name = "sigmoid"

    def act(self, k, layer, z):
        h, d = super().act(k, layer, z)
        if layer.activation == "sigmoid":
            d = sigmoid(h) * (1 - sigmoid(h))
        return h, d


class TanhDerivativeOfPreactivation(_Mutant):
    bug = "tanh' written as 1 - z² instead of 1 - tanh(z)²"
    category, layers = "activation derivative", None
    activation_name = "tanh"

    def act(self, k, layer, z):
        h, d = super().act(k, layer, z)
        if layer.activation == "tanh":
            d = 1 - z * z
        return h, d


class Float32Accumulation(_Mutant):
    bug = "a float64 network whose backward pass accumulates in float32"
    category, layers = "precision", None

    def _backward(self, spec, params, X, Y):
        cost, _, inter = super()._backward(spec, params, X, Y)
        s32 = spec.with_(dtype="float32")
        p32 = [(W.astype(np.float32), b.astype(np.float32)) for W, b in params]
        _, g32, _ = NumpyMLP._backward(self, s32, p32, X.astype(np.float32), Y.astype(np.float32))
        return cost, [(gW.astype(X.dtype), gb.astype(X.dtype)) for gW, gb in g32], inter


class SwappedLayerGradients(_Mutant):
    bug = "the gradients of layers 1 and 2 are returned in each other's place"
    category, layers = "layer structure", (1, 2)

    def fix_grads(self, spec, params, X, grads):
        if len(grads) < 2:
            return grads
        return [grads[1], grads[0]] + grads[2:]


class MseDerivativeSign(_Mutant):
    bug = "MSE derivative written t - y instead of y - t"
    category, layers = "loss gradient", None
    loss_name = "mse"

    def loss(self, name, y, t):
        per_sample, g = super().loss(name, y, t)
        return per_sample, (t - y if name == "mse" else g)


class ScaledByOnePlusMicro(_Mutant):
    bug = "every gradient scaled by 1 + 1e-6 (a constant folded in slightly wrong): only a bound that was never loosened sees it"
    category, layers = "scale", None

    def fix_grads(self, spec, params, X, grads):
        return [(gW * (1 + 1e-6), gb * (1 + 1e-6)) for gW, gb in grads]


class SingleEntryOff(_Mutant):
    bug = "one entry, layer 1 W[0,0], off by 1e-3 times the largest gradient entry (an indexing slip in one place)"
    category, layers = "single entry", (1,)

    def fix_grads(self, spec, params, X, grads):
        top = max(max(np.abs(gW).max(initial=0), np.abs(gb).max(initial=0)) for gW, gb in grads)
        gW = grads[0][0].copy()
        gW[0, 0] += 1e-3 * (top if top > 0 else 1.0)
        return [(gW, grads[0][1])] + grads[1:]


class RegularizedBiases(_Mutant):
    bug = "weight decay applied to the biases too: db gets l2 * b (the cost regularizes weights only)"
    category, layers = "regularizer", None

    def fix_grads(self, spec, params, X, grads):
        return [(gW, gb + spec.l2 * b) for (gW, gb), (_, b) in zip(grads, params)]


class RegularizerAddedTwice(_Mutant):
    bug = "the weight-decay term l2 * W added to dW twice (once in the loop, once more at the end)"
    category, layers = "regularizer", None

    def fix_grads(self, spec, params, X, grads):
        return [(gW + spec.l2 * W, gb) for (gW, gb), (W, _) in zip(grads, params)]


class LastBiasEntryDropped(_Mutant):
    bug = "layer 1's bias gradient loop stops one unit short: its last entry is left at 0"
    category, layers = "single entry", (1,)

    def fix_grads(self, spec, params, X, grads):
        gb = grads[0][1].copy()
        gb[-1] = 0.0
        return [(grads[0][0], gb)] + grads[1:]


class Float16OutputError(_Mutant):
    bug = "the output error dloss/dy is kept in a float16 buffer before backpropagation"
    category, layers = "precision", None

    def loss(self, name, y, t):
        per_sample, g = super().loss(name, y, t)
        return per_sample, g.astype(np.float16).astype(g.dtype)


class StepTakenInPlace(_Mutant):
    bug = "gradients() also takes a training step: W -= 0.1 * dW in place on the caller's weights"
    category, layers = "input mutation", None

    def fix_grads(self, spec, params, X, grads):
        for (W, _), (gW, _) in zip(params, grads):
            W -= 0.1 * gW
        return grads


class TargetsReusedAsBuffer(_Mutant):
    bug = "the targets array Y is reused as the buffer for the output error dloss/dy"
    category, layers = "input mutation", None

    def loss(self, name, y, t):
        per_sample, g = super().loss(name, y, t)
        np.copyto(t, g)   # Y is the caller's array: the harness sees its targets overwritten
        return per_sample, t


MUTANTS = {cls.__name__: cls for cls in _Mutant.__subclasses__()}


def get(name: str) -> NumpyMLP:
    return MUTANTS[name]()
