"""Per-entry comparison of two gradients, turned into one Verdict.

The relative error of an entry is |a - b| / max(|a| + |b|, floor): the floor keeps entries that
are tiny compared to the gradient's scale from being judged on their rounding noise alone.
An entry passes when its relative error is at most its bound (a scalar or one bound per entry).

Reported errors use a scale floor too: an entry a millionth of the largest (SCALE_FLOOR) is
reported relative to that level, since its own size says nothing about the accuracy of the
gradient (1e-20 against 0 is "relative error 1"). The bound is rescaled with it, so whether an
entry passes is unchanged: only the numbers shown in tables and plots stop being noise.
Kink entries (non-differentiable points) and undecided entries are counted, never failed.
"""
from __future__ import annotations

import numpy as np

from reference.spec import NetworkSpec, param_index
from reference.verdict import FAILED, NOT_CHECKABLE, PASSED, Entry, Verdict


SCALE_FLOOR = 1e-6


def relative_errors(a, b, floor: float = 0.0) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    denom = np.maximum(np.abs(a) + np.abs(b), floor)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(a - b) / denom
    rel = np.where(denom == 0, np.where(a == b, 0.0, np.inf), rel)
    return np.where(np.isnan(a) | np.isnan(b), np.inf, rel)


def relative_bound(tol, a, b) -> np.ndarray:
    """An absolute tolerance per entry as the relative bound compare() takes: tol / (|a| + |b|)
    (subnormal sizes included: clamping them to 1e-300 would shrink their bound to nothing)."""
    size = np.abs(np.asarray(a, np.float64)) + np.abs(np.asarray(b, np.float64))
    with np.errstate(over="ignore"):  # tol far above a subnormal size: an infinite bound, rightly
        return np.asarray(tol, np.float64) / np.maximum(size, np.finfo(np.float64).smallest_subnormal)


def entry_of(spec: NetworkSpec | None, i: int, param: str | None = None) -> Entry:
    if spec is None or param == "cost":
        return Entry(0, param or "theta", (int(i),))
    layer, p, idx = param_index(spec, i)
    return Entry(layer, p, idx)


def compare(check: str, spec: NetworkSpec | None, a, b, bound, floor: float = 0.0, *,
            kinks=None, undecided=None, entry=entry_of, fail_status: str = FAILED,
            message: str = "", **fields) -> Verdict:
    """Compare a (implementation or numerical) with b (reference) per entry -> Verdict.

    `bound` is the relative-error bound, scalar or per entry; `entry(spec, i)` names entry i."""
    a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
    size = np.abs(a) + np.abs(b)
    finite = size[np.isfinite(size)]
    report_floor = max(floor, SCALE_FLOOR * (finite.max() if finite.size else 0.0))
    rel = relative_errors(a, b, report_floor)
    bound = np.broadcast_to(np.asarray(bound, np.float64), rel.shape)
    # same decision, floored denominator: bound * (|a| + |b|) / max(|a| + |b|, floor)
    with np.errstate(invalid="ignore"):
        bound = np.where(size > 0, bound * np.maximum(size, floor) / np.maximum(size, report_floor), bound)
    skip = np.zeros(rel.shape, bool)
    kinks = np.zeros(rel.shape, bool) if kinks is None else np.ravel(kinks)
    undecided = np.zeros(rel.shape, bool) if undecided is None else np.ravel(undecided) & ~kinks
    skip = kinks | undecided
    live = ~skip
    v = Verdict(check=check, status=PASSED, spec=None if spec is None else spec.to_dict(),
                case="" if spec is None else spec.describe(), n_entries=int(rel.size),
                n_kinks=int(kinks.sum()), n_undecided=int(undecided.sum()), message=message, **fields)
    if not live.any():
        v.status = NOT_CHECKABLE
        v.message = message or "every entry is a kink or undecided"
        return v
    ratio = np.where(live, rel / np.where(bound > 0, bound, np.inf), -1.0)
    ratio = np.where(live & (bound <= 0) & (rel > 0), np.inf, ratio)
    worst = int(np.argmax(ratio))
    v.max_error = float(rel[live].max())
    v.median_error = float(np.median(rel[live]))
    v.bound = float(bound[worst])
    v.worst_error = float(rel[worst])
    v.worst = entry(spec, worst)
    v.worst_values = (float(a[worst]), float(b[worst]))
    if ratio[worst] > 1:
        v.status = fail_status
        n_bad = int((ratio > 1).sum())
        v.message = (message + "; " if message else "") + f"{n_bad} of {int(live.sum())} entries over their bound"
    return v
