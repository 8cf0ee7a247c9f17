"""Takes a gradient step on the caller's weights inside gradients(): the classic aliasing bug
(W -= lr * dW on an array it was given, not one it owns)."""
from bad_common import Broken


def _corrupt(spec, params, X, Y, cost, grads):
    W = params[0][0]
    W -= 0.1 * grads[0][0]
    return cost, grads


IMPL = Broken("bad-mutates", _corrupt)
