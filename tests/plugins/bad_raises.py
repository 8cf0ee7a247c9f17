from bad_common import Broken


def _corrupt(spec, params, X, Y, cost, grads):
    scale = 1 / (len(grads) - spec.depth)  # ZeroDivisionError, as a typo'd normalisation would
    return cost * scale, grads


IMPL = Broken("bad-raises", _corrupt)
