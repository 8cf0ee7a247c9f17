"""A correct backprop whose every sum runs in a random order, drawn anew on each call: matrix
products accumulated one term at a time over a permutation of the contracted index, batch sums
and the cost over a permutation of the samples. Like a scalar autodiff engine that walks a
`set` of children, two identical calls differ by rounding only: never an error."""
import numpy as np

from implementations.numpy_mlp import activation, loss, maxout
from implementations.protocol import Capabilities, Intermediates

_rng = np.random.default_rng()


def _matmul(A, B):
    """A @ B with the products over the contracted index summed in a random order."""
    out = np.zeros((A.shape[0], B.shape[1]), A.dtype)
    for k in _rng.permutation(A.shape[1]):
        out = out + np.outer(A[:, k], B[k])
    return out


def _sum_rows(A):
    out = np.zeros(A.shape[1:], A.dtype)
    for i in _rng.permutation(A.shape[0]):
        out = out + A[i]
    return out


class ShuffledSums:
    name = "shuffled-sums"
    capabilities = Capabilities(intermediates=True)  # the whole vocabulary, maxout included

    def _backward(self, spec, params, X, Y):
        zs, hs, ds = [], [X], []
        for layer, (W, b) in zip(spec.layers, params):
            z = _matmul(hs[-1], W.T) + b
            h, d = maxout(z, layer.pieces) if layer.activation == "maxout" else activation(layer.activation, layer.param, z)
            zs.append(z), hs.append(h), ds.append(d.astype(z.dtype))
        per_sample, g = loss(spec.loss, hs[-1], Y)
        n = X.shape[0]
        g = (g / n).astype(X.dtype)
        grads, deltas = [None] * spec.depth, [None] * spec.depth
        for k in reversed(range(spec.depth)):
            layer, (W, _) = spec.layers[k], params[k]
            if layer.activation == "maxout":
                g = np.repeat(g, layer.pieces, axis=1)
            g = g * ds[k]
            deltas[k] = g
            grads[k] = (_matmul(g.T, hs[k]) + spec.l2 * W, _sum_rows(g))
            g = _matmul(g, W)
        reg = 0.5 * spec.l2 * sum(_sum_rows((W * W).ravel()[:, None])[0] for W, _ in params)
        cost = _sum_rows(per_sample[:, None])[0] / n + reg
        return cost, grads, Intermediates(zs, hs[1:], deltas)

    def gradients(self, spec, params, X, Y):
        cost, grads, _ = self._backward(spec, params, X, Y)
        return cost, grads

    def intermediates(self, spec, params, X, Y):
        return self._backward(spec, params, X, Y)[2]


IMPL = ShuffledSums()
