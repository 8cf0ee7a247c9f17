"""The reference perceptron of seed 003 and Novikoff's bound, decided in exact arithmetic.

Algorithm (seed 003, "3.1 The perceptron"): start from w = 0, cycle over the samples in order;
on a mistake, y (w . x) <= 0, update w <- w + y x. A pass without a mistake ends training.
The bias is handled by input augmentation: callers who want one append a constant column
(`augment(X)`), whose weight is the bias. `train_perceptron` itself is homogeneous.

Novikoff's bound, with w* any vector (not necessarily unit) that separates the data:

    m = min_n y_n (w* . x_n) > 0,   R^2 = max_n ||x_n||^2,   gamma = m / ||w*||

    after k updates:  w_k . w* >= k m                (each update adds y (w* . x) >= m)
                      ||w_k||^2 <= k R^2             (||w + y x||^2 = ||w||^2 + 2 y (w . x) + ||x||^2,
                                                      and y (w . x) <= 0 at a mistake)
    Cauchy-Schwarz:   (k m)^2 <= (w_k . w*)^2 <= ||w_k||^2 ||w*||^2 <= k R^2 ||w*||^2
    hence             k <= R^2 ||w*||^2 / m^2 = (R / gamma)^2.

No square root appears: with every float an exact dyadic rational, R^2, ||w*||^2 and m are
exact rationals, so the bound is an exact `Fraction` and `k <= bound` is decided exactly,
equivalently k m^2 <= R^2 ||w*||^2 in integers. In floating point, (R/gamma)^2 is a trap: for
x_i = e_i in d = 10 dimensions and w* = (1, ..., 1)/sqrt(10), R = 1 and gamma = fl(1/sqrt(10)),
so (R/gamma)**2 evaluates to 9.999999999999998 while the perceptron makes exactly k = 10
updates; the exact bound is 10 (the float w*'s own norm enters as ||w*||^2, exactly).

Seed 003 states the bound as k <= 4 R^2 / gamma_s^2 under the assumption y (x . w*) >= gamma_s / 2
with ||w*|| = 1: its gamma_s is twice our margin (the largest admissible gamma_s is 2 gamma),
so 4 R^2 / gamma_s^2 = 4 R^2 / (2 gamma)^2 = (R / gamma)^2: the same bound. (Putting our gamma
into the seed's formula would give a valid but 4x looser bound; the e_i family attains
(R / gamma)^2, so neither form can be tightened.)

Budget: k <= floor(bound) updates means at most floor(bound) passes with a mistake, then one
clean pass, so `novikoff_budget` = floor(bound) + 1 passes always suffice on separable data.
Non-separable data (seed 004's XOR) never has a clean pass: training stops at `max_epochs`
with converged=False, never a hang.

Mistake tests are made on `X[i:] @ w` (one vectorized search for the next mistake per update);
on data whose products and sums are exact (small integers, dyadic rationals) the run is the
exact-arithmetic run, which is what the bound speaks about.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from reference.spec import SpecError


@dataclass(frozen=True)
class PerceptronResult:
    w: np.ndarray             # final weights (the bias is the weight of an augmented constant column)
    updates: int              # k: the number of updates (= mistakes) made
    passes: int               # passes over the data, including the final clean one if it converged
    converged: bool           # a full pass without a mistake happened within max_epochs
    mistakes: tuple = ()      # sample index of each update, in order (len == updates)
    max_epochs: int = 0       # the budget it was given

    @property
    def k(self) -> int:
        return self.updates

    def describe(self) -> str:
        if self.converged:
            return f"converged after {self.updates} updates in {self.passes} passes"
        return f"did not converge within {self.max_epochs} passes ({self.updates} updates)"


def augment(X) -> np.ndarray:
    """X with a constant column of ones appended: its weight is the bias (seed 003)."""
    X = _as_matrix(X, "X")
    return np.hstack([X, np.ones((X.shape[0], 1))])


def _as_matrix(X, name: str) -> np.ndarray:
    try:
        A = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecError(f"{name}: expected a numeric array, got {type(X).__name__}") from None
    if A.ndim != 2:
        raise SpecError(f"{name}: expected a 2-d array (N, d), got shape {A.shape}")
    if A.shape[0] < 1 or A.shape[1] < 1:
        raise SpecError(f"{name}: expected at least one sample and one feature, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise SpecError(f"{name}: contains NaN or inf")
    return A


def check_data(X, y) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) as float64 arrays, or SpecError naming the culprit."""
    X = _as_matrix(X, "X")
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecError(f"y: expected a numeric array, got {type(y).__name__}") from None
    if y.shape != (X.shape[0],):
        raise SpecError(f"y: expected shape ({X.shape[0]},) to match X's {X.shape[0]} samples, got {y.shape}")
    if not np.all((y == 1) | (y == -1)):
        bad = np.unique(y[(y != 1) & (y != -1)])[:5]
        raise SpecError(f"y: labels must be -1 or 1, got {bad.tolist()}")
    return X, y


def _check_budget(max_epochs) -> int:
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, (int, np.integer)) or max_epochs < 1:
        raise SpecError(f"max_epochs: must be a positive integer, got {max_epochs!r}")
    return int(max_epochs)


def train_perceptron(X, y, max_epochs: int) -> PerceptronResult:
    """Seed 003's perceptron on (X, y), at most `max_epochs` passes (see the module docstring)."""
    return run_rule(X, y, max_epochs, is_mistake=seed_mistake, update=seed_update)


def seed_mistake(scores: np.ndarray) -> np.ndarray:
    """The seed's mistake test on scores y (w . x): <= 0, so that w = 0 misclassifies everything."""
    return scores <= 0


def seed_update(w: np.ndarray, x: np.ndarray, y: float, k: int) -> np.ndarray:
    """The seed's update w + y x (k, the number of earlier updates, is unused by the seed)."""
    return w + y * x


def run_rule(X, y, max_epochs: int, is_mistake=seed_mistake, update=seed_update) -> PerceptronResult:
    """The perceptron loop with its two rules as arguments (implementations.perceptron_mutants
    changes one of them). Each pass searches the next mistake from sample i on, vectorized."""
    X, y = check_data(X, y)
    max_epochs = _check_budget(max_epochs)
    N, d = X.shape
    w = np.zeros(d)
    mistakes: list[int] = []
    passes, converged = 0, False
    for _ in range(max_epochs):
        passes += 1
        before, i = len(mistakes), 0
        while i < N:
            bad = np.flatnonzero(is_mistake(y[i:] * (X[i:] @ w)))
            if bad.size == 0:
                break
            j = i + int(bad[0])
            w = update(w, X[j], y[j], len(mistakes))
            mistakes.append(j)
            i = j + 1
        if len(mistakes) == before:
            converged = True
            break
    return PerceptronResult(w, len(mistakes), passes, converged, tuple(mistakes), max_epochs)


# --- exact arithmetic on floats --------------------------------------------------------------

def dyadic(A) -> tuple[np.ndarray, int]:
    """A (finite floats) as (P, s): an object array of Python ints with A == P / 2**s exactly."""
    flat = [float(v).as_integer_ratio() for v in np.ravel(np.asarray(A, dtype=np.float64))]
    shifts = [q.bit_length() - 1 for _, q in flat]             # every denominator is a power of 2
    s = max(shifts, default=0)
    P = np.empty(len(flat), dtype=object)
    P[:] = [p << (s - k) for (p, _), k in zip(flat, shifts)]
    return P.reshape(np.shape(A)), s


def _functional_margins(X, y, w) -> tuple[np.ndarray, int]:
    """y_n (w . x_n) for every sample as exact integers M with the margins == M / 2**s."""
    Px, sx = dyadic(X)
    Pw, sw = dyadic(w)
    Py = np.array([int(v) for v in y], dtype=object)
    return Py * Px.dot(Pw), sx + sw


def radius_squared(X) -> Fraction:
    """R^2 = max_n ||x_n||^2, exactly."""
    P, s = dyadic(_as_matrix(X, "X"))
    return Fraction(int(max((P * P).sum(axis=1))), 1 << (2 * s))


def separates(X, y, w) -> tuple[bool, int | None]:
    """(True, None) if y_n (w . x_n) > 0 for every sample, exactly; else (False, first culprit)."""
    X, y = check_data(X, y)
    M, _ = _functional_margins(X, y, np.asarray(w, dtype=np.float64))
    bad = [n for n, m in enumerate(M) if m <= 0]
    return (not bad, bad[0] if bad else None)


def margin(X, y, w_star) -> float:
    """The geometric margin gamma = min_n y_n (w* . x_n) / ||w*|| (rounded once, for display;
    negative if w* does not separate). Decisions use `novikoff_bound`, which needs no sqrt."""
    X, y = check_data(X, y)
    w_star = _weights(w_star, X.shape[1])
    M, s = _functional_margins(X, y, w_star)
    Pw, sw = dyadic(w_star)
    n2 = Fraction(int((Pw * Pw).sum()), 1 << (2 * sw))
    if n2 == 0:
        raise SpecError("w_star: is the zero vector")
    return float(Fraction(int(min(M)), 1 << s)) / math.sqrt(n2)


def _weights(w, d: int) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (d,):
        raise SpecError(f"w_star: expected shape ({d},) to match X's {d} features, got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise SpecError("w_star: contains NaN or inf")
    return w


def novikoff_bound(X, y, w_star) -> Fraction:
    """(R / gamma)^2 = R^2 ||w*||^2 / m^2 for the separator w_star, as an exact Fraction
    (the powers of two of the dyadic representation cancel). SpecError naming w_star if it
    does not separate the data with a positive margin."""
    X, y = check_data(X, y)
    w_star = _weights(w_star, X.shape[1])
    M, s = _functional_margins(X, y, w_star)
    worst = int(np.argmin(M))
    m = int(M[worst])
    if m <= 0:
        raise SpecError(f"w_star: does not separate the data with a positive margin "
                        f"(y (w* . x) = {float(Fraction(m, 1 << s)):.17g} at sample {worst})")
    Px, _ = dyadic(X)
    Pw, _ = dyadic(w_star)
    # scales: R^2 ~ 2^-2sx, ||w*||^2 ~ 2^-2sw, m^2 ~ 2^-2(sx+sw): they cancel in the ratio
    return Fraction(int(max((Px * Px).sum(axis=1))) * int((Pw * Pw).sum()), m * m)


def novikoff_budget(bound: Fraction) -> int:
    """Passes that always suffice on data separable with this bound: floor(bound) + 1."""
    return math.floor(bound) + 1
