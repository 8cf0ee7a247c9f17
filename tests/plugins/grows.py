"""A correct implementation that keeps something per call, as a jax.jit cache keeps one compiled
program per network: 40 MB a call, never freed (tests/test_isolation.py: its worker is
replaced between calls once it has grown past isolation.RECYCLE_BYTES)."""
import numpy as np

from implementations.numpy_mlp import NumpyMLP

_kept = []


class Grows(NumpyMLP):
    name = "grows"

    def gradients(self, spec, params, X, Y):
        _kept.append(np.ones(5 << 20))   # 40 MB, touched: resident
        return super().gradients(spec, params, X, Y)


IMPL = Grows()
