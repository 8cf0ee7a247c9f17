"""Hangs on batches of TRIGGER_N samples inside C code that holds the GIL (libc sleep called
through ctypes.PyDLL, which does not release it), so no other thread of its process runs."""
import ctypes

from bad_common import TRIGGER_N, Broken


def _corrupt(spec, params, X, Y, cost, grads):
    if X.shape[0] == TRIGGER_N:
        ctypes.PyDLL(None).sleep(3600)
    return cost, grads


IMPL = Broken("bad-hang-gil", _corrupt)
