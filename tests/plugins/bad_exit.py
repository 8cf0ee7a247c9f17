"""Calls os._exit on batches of TRIGGER_N samples, works otherwise."""
import os

from bad_common import TRIGGER_N, Broken


def _corrupt(spec, params, X, Y, cost, grads):
    if X.shape[0] == TRIGGER_N:
        os._exit(3)
    return cost, grads


IMPL = Broken("bad-exit", _corrupt)
