"""Non-finite results."""
import numpy as np

from bad_common import Broken


def _nan(spec, params, X, Y, cost, grads):
    grads[-1][0][0, 1] = np.nan  # layer 2 W[0,1] for a two-layer network
    return cost, grads


def _inf(spec, params, X, Y, cost, grads):
    grads[0][1][-1] = np.inf     # layer 1 b
    return cost, grads


def _cost_nan(spec, params, X, Y, cost, grads):
    return float("nan"), grads


NAN = Broken("bad-nan", _nan)
INF = Broken("bad-inf", _inf)
COST_NAN = Broken("bad-cost-nan", _cost_nan)
