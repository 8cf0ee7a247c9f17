"""Answers every call with the built-in's gradients plus random noise of size 1e-3: a plug-in
whose results really differ between identical calls (an unseeded dropout mask left on in its
backward pass, say). Its results look like wrong gradients on every call; rechecked, they are
named non-deterministic."""
import numpy as np

from bad_common import Broken

NOISE = 1e-3
_rng = np.random.default_rng()


def _noisy(spec, params, X, Y, cost, grads):
    return cost, [tuple(a + NOISE * _rng.standard_normal(a.shape).astype(a.dtype) for a in pair) for pair in grads]


IMPL = Broken("nondeterministic-noise", _noisy)
