"""Per-entry comparison of two gradients, turned into one Verdict.

The relative error of an entry is |a - b| / max(|a| + |b|, floor): the floor keeps entries that
are tiny compared to the gradient's scale from being judged on their rounding noise alone.
An entry passes when its relative error is at most its bound (a scalar or one bound per entry).

Reported errors use a scale floor too: an entry a millionth of the largest (SCALE_FLOOR) is
reported relative to that level, since its own size says nothing about the accuracy of the
gradient (1e-20 against 0 is "relative error 1"). The bound is rescaled with it, so whether an
entry passes is unchanged: only the numbers shown in tables and plots stop being noise.
Kink entries (non-differentiable points) and undecided entries are counted, never failed.

No vacuous verdicts: the relative error is at most 1 (|a - b| <= |a| + |b|), so an entry whose
bound is VACUOUS_BOUND = 1/2 or more could only fail on a sign flip or a factor of 3: a check
whose error model allows that much has not checked the entry. Such entries are undecided ("the
rounding a correct implementation may carry is as large as the value"), and a verdict with no
decided entry is not_checkable, never passed.
"""
from __future__ import annotations

import numpy as np

from reference.spec import NetworkSpec, param_index
from reference.verdict import FAILED, NOT_CHECKABLE, PASSED, Entry, Verdict


SCALE_FLOOR = 1e-6
VACUOUS_BOUND = 0.5
VACUOUS_REASON = "bound >= 1/2: a correct implementation's rounding may be as large as the value"


def relative_errors(a, b, floor: float = 0.0) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _relative_errors(a, b, np.maximum(np.abs(a) + np.abs(b), floor))


def _relative_errors(a, b, denom):
    """|a - b| / denom; 0 where denom is 0 (only a = b = 0 gives it), inf where a or b is NaN
    (call under np.errstate: this runs once per comparison, on small arrays)."""
    rel = np.abs(a - b) / denom
    rel[denom == 0] = 0.0
    rel[np.isnan(a) | np.isnan(b)] = np.inf
    return rel


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
    n = a.size
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # one context: they cost ~5 µs each
        size = np.abs(a) + np.abs(b)
        top = size.max(initial=0.0)
        if not np.isfinite(top):
            finite = size[np.isfinite(size)]
            top = finite.max(initial=0.0)
        report_floor = max(floor, SCALE_FLOOR * top)
        rel = _relative_errors(a, b, np.maximum(size, report_floor))
        bound = np.array(np.broadcast_to(np.asarray(bound, np.float64), rel.shape))
        given = bound.copy()
        # same decision, floored denominator: bound * (|a| + |b|) / max(|a| + |b|, floor)
        pos = size > 0
        bound[pos] = bound[pos] * np.maximum(size[pos], floor) / np.maximum(size[pos], report_floor)
        kinks = np.zeros(n, bool) if kinks is None else np.ravel(kinks)
        undecided = np.zeros(n, bool) if undecided is None else np.ravel(undecided) & ~kinks
        vacuous = ~(given < VACUOUS_BOUND) & ~kinks & ~undecided   # NaN bounds too
        undecided = undecided | vacuous
        live = ~(kinks | undecided)
        v = Verdict(check=check, status=PASSED, spec=None if spec is None else spec.to_dict(),
                    case="" if spec is None else spec.describe(), n_entries=int(n),
                    n_kinks=int(np.count_nonzero(kinks)), n_undecided=int(np.count_nonzero(undecided)),
                    message=message, **fields)
        n_vacuous = int(np.count_nonzero(vacuous))
        if n_vacuous:
            v.extra["undecided_vacuous"] = n_vacuous
        n_live = int(np.count_nonzero(live))
        if not n_live:
            v.status = NOT_CHECKABLE
            v.message = message or ("every entry is a kink or undecided" if n_vacuous < n else
                                    f"no entry decided: {VACUOUS_REASON}")
            return v
        # rel / bound on live entries (a zero bound: only an exact match passes), -1 elsewhere
        ratio = np.full(n, -1.0)
        ratio[live] = rel[live] / np.where(bound[live] > 0, bound[live], np.inf)
        ratio[live & (bound <= 0) & (rel > 0)] = np.inf
    worst = int(np.argmax(ratio))
    live_rel = rel[live]
    v.max_error = float(live_rel.max())
    v.median_error = _median(live_rel)
    v.bound = float(bound[worst])
    v.worst_error = float(rel[worst])
    v.worst = entry(spec, worst)
    v.worst_values = (float(a[worst]), float(b[worst]))
    if ratio[worst] > 1:
        v.status = fail_status
        n_bad = int(np.count_nonzero(ratio > 1))
        v.message = (message + "; " if message else "") + f"{n_bad} of {n_live} entries over their bound"
    return v


def _median(x: np.ndarray) -> float:
    """np.median of a non-empty 1-d array, without its generic machinery (~8x faster here)."""
    k = x.size // 2
    if np.isnan(x).any():  # as np.median
        return float("nan")
    if x.size % 2:
        return float(np.partition(x, k)[k])
    p = np.partition(x, (k - 1, k))
    return float((p[k - 1] + p[k]) / 2)
