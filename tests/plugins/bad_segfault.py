"""Segfaults (reads address 0 through ctypes) on batches of TRIGGER_N samples, works otherwise."""
import ctypes
import faulthandler

from bad_common import TRIGGER_N, Broken


def _corrupt(spec, params, X, Y, cost, grads):
    if X.shape[0] == TRIGGER_N:
        faulthandler.disable()  # keep the test output clean; the signal is what matters
        ctypes.string_at(0)
    return cost, grads


IMPL = Broken("bad-segfault", _corrupt)
