"""Unit roundoff and the rounding-count factor shared by the error model and the kink zone."""
from __future__ import annotations

import math

import numpy as np


def unit_roundoff(dtype) -> float:
    return float(np.finfo(np.dtype(dtype)).eps) / 2


def rounding_factor(spec, n: int) -> float:
    """c: a few roundings per stage (depth + loss + mean) plus the summation depth over the
    batch and the widths, log2(N H)."""
    width = max([spec.n_in] + [l.rows for l in spec.layers])
    return 4 * (spec.depth + 2) + 2 * math.log2(max(n * width, 2))
