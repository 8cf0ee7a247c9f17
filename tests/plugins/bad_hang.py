"""Hangs on batches of TRIGGER_N samples (an infinite loop), works otherwise."""
import time

from bad_common import TRIGGER_N, Broken


def _corrupt(spec, params, X, Y, cost, grads):
    while X.shape[0] == TRIGGER_N:
        time.sleep(0.05)
    return cost, grads


IMPL = Broken("bad-hang", _corrupt)
