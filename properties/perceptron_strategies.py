"""Hypothesis strategies for the perceptron properties: separable data with a planted margin,
the tight e_i family, and non-separable data with a certificate.

Every coordinate is a small integer times a power of two, so every product and sum the
perceptron makes is exact in float64 (in units of the grid, |x| and |w . x| stay in the tens
and thousands, far below 2^24, so float32 plug-ins are exact as well). The float run is then
the exact run, which is what Novikoff's bound speaks about: the property needs no slack.

Dimensions, sizes, margins and scales are drawn by Hypothesis (they shrink); the coordinates
come from a seeded NumPy generator, since drawing up to 200 x 21 integers one by one would
dominate the run time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

Q = 8            # random parts of points: integers in [-Q, Q]
W_MAX = 4        # planted separator: integers in [-W_MAX, W_MAX]
# margin targets as a fraction mu of the unpushed points' radius R0: (R/gamma)^2 is then about
# ((2 + mu) / mu)^2, up to ~300 for mu = 1/16, with k from 1 to a few dozen
MARGIN_FRACTIONS = (0.5, 0.25, 0.125, 0.0625)
SCALE_EXPONENTS = tuple(range(-4, 5))      # the data are multiplied by 2**e


@dataclass(frozen=True)
class SeparableCase:
    X: np.ndarray               # (N, D) float64; with a bias, the last column is the constant 2**e
    y: np.ndarray               # (N,) in {-1, 1}
    w_star: np.ndarray          # (D,) a planted separator (not normalized: the bound needs no norm)
    label: str
    expected_k: int | None = None   # tight families: the exact number of updates

    def describe(self) -> str:
        N, D = self.X.shape
        return f"{self.label} N={N} D={D}"


@dataclass(frozen=True)
class NonSeparableCase:
    X: np.ndarray
    y: np.ndarray
    max_epochs: int
    label: str

    def describe(self) -> str:
        N, D = self.X.shape
        return f"{self.label} N={N} D={D} budget={self.max_epochs}"


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@st.composite
def separable_data(draw, max_dim: int = 20, max_n: int = 200, bias: bool | None = None) -> SeparableCase:
    """Linearly separable data with a planted margin: a random integer separator w* (with a
    random bias b when the data are augmented with a constant column), random points q, each
    then kept if y (w* . q) >= m already, else pushed to q + a y w*_d with the least integer a
    that reaches the margin target m = ceil(mu R0 ||w*||), R0 the radius of the unpushed points.
    Labels are random, so about half the points are pushed across the separator. `bias`:
    always / never augment (default: drawn)."""
    d = draw(st.integers(1, max_dim), label="d")
    n = draw(st.integers(1, max_n), label="N")
    bias = draw(st.booleans(), label="bias") if bias is None else bias
    mu = draw(st.sampled_from(MARGIN_FRACTIONS), label="mu")
    e = draw(st.sampled_from(SCALE_EXPONENTS), label="scale exponent")
    seed = draw(st.integers(0, 2 ** 32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    wd = [int(v) for v in rng.integers(-W_MAX, W_MAX + 1, d)]
    if not any(wd):
        wd[int(rng.integers(d))] = 1
    b = int(rng.integers(-W_MAX, W_MAX + 1)) if bias else 0
    n2d = sum(v * v for v in wd)
    qs = [[int(v) for v in rng.integers(-Q, Q + 1, d)] for _ in range(n)]
    ys = [int(v) for v in rng.choice([-1, 1], n)]
    r0 = max(math.sqrt(sum(v * v for v in q) + bias) for q in qs)
    m = max(1, math.ceil(mu * r0 * math.sqrt(n2d + b * b)))
    rows = []
    for q, y in zip(qs, ys):
        s = y * (sum(wi * qi for wi, qi in zip(wd, q)) + b)
        a = max(0, _ceil_div(m - s, n2d))
        rows.append([qi + a * y * wi for qi, wi in zip(q, wd)] + ([1] if bias else []))
    X = np.array(rows, dtype=np.float64) * 2.0 ** e
    w_star = np.array(wd + ([b] if bias else []), dtype=np.float64)
    label = f"planted margin mu={mu:g}{' +bias' if bias else ''} scale 2^{e} seed={seed}"
    return SeparableCase(X, np.array(ys, dtype=np.float64), w_star, label)


@st.composite
def unit_vectors(draw, max_dim: int = 20, near: bool | None = None) -> SeparableCase:
    """The tight family: x_i = e_i with random signs, order, duplicates and a power-of-two
    scale. From w = 0 every e_i is a mistake once and never again (only its own update touches
    coordinate i), so k = d exactly, in any order; with w* = sum_i y_i e_i the bound is d.
    Near-tight: one coordinate shortened to c = 7/8 (w*_i = y_i / c rounded: any separator
    gives a valid bound), so d < (R/gamma)^2 ~ d + 0.31 < d + 1: still k = d, and one extra
    update is over the bound."""
    d = draw(st.integers(1, max_dim), label="d")
    near = draw(st.booleans(), label="near") if near is None else near
    e = draw(st.sampled_from(SCALE_EXPONENTS), label="scale exponent")
    seed = draw(st.integers(0, 2 ** 32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    c = np.ones(d)
    if near and d > 1:
        c[int(rng.integers(d))] = 0.875
    signs = rng.choice([-1.0, 1.0], d)
    idx = rng.permutation(np.repeat(np.arange(d), rng.integers(1, 4, d)))
    X = (np.eye(d) * c)[idx] * 2.0 ** e
    label = f"{'near-tight' if near and d > 1 else 'tight'} e_i d={d} scale 2^{e} seed={seed}"
    return SeparableCase(X, signs[idx], signs / c, label, expected_k=d)


XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])   # seed 004
XOR_Y = np.array([-1.0, 1.0, 1.0, -1.0])


@st.composite
def nonseparable_data(draw, max_extra_dims: int = 5, max_extra_points: int = 20) -> NonSeparableCase:
    """Seed 004's XOR (augmented with a constant 1), embedded with extra features and extra
    random points, in random order and scale. Certificate of non-separability kept through the
    embedding: the positives P1 + P2 equal the negatives N1 + N2 (the extra features of N2 are
    chosen to make it so), so for any w, w.P1 + w.P2 = w.N1 + w.N2 cannot be > 0 and < 0."""
    extra_d = draw(st.integers(0, max_extra_dims), label="extra features")
    extra_n = draw(st.integers(0, max_extra_points), label="extra points")
    budget = draw(st.integers(1, 30), label="max_epochs")
    e = draw(st.sampled_from(SCALE_EXPONENTS), label="scale exponent")
    seed = draw(st.integers(0, 2 ** 32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    F = rng.integers(-Q, Q + 1, (4, extra_d)).astype(np.float64)
    F[3] = F[1] + F[2] - F[0]                     # N1 + N2 = P1 + P2 in the extra features too
    base = np.hstack([XOR_X, F, np.ones((4, 1))])
    more = np.hstack([rng.integers(-Q, Q + 1, (extra_n, 2 + extra_d)), np.ones((extra_n, 1))])
    X = np.vstack([base, more])
    y = np.concatenate([XOR_Y, rng.choice([-1.0, 1.0], extra_n)])
    order = rng.permutation(len(y))
    label = f"xor +{extra_d} features +{extra_n} points scale 2^{e} seed={seed}"
    return NonSeparableCase(X[order] * 2.0 ** e, y[order], budget, label)


def xor_case(max_epochs: int = 100) -> NonSeparableCase:
    """Seed 004's XOR exactly, with the bias column."""
    return NonSeparableCase(np.hstack([XOR_X, np.ones((4, 1))]), XOR_Y.copy(), max_epochs, "seed 004 xor")
