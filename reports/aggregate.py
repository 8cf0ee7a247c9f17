"""Summaries of verdict records shared by the terminal table and the HTML report."""
from __future__ import annotations

import functools
import json
import math
from collections import Counter, defaultdict

from reference.verdict import ERROR, FAILED, NOT_CHECKABLE, PASSED, REFERENCE_MISMATCH, Verdict

ORDER = (FAILED, ERROR, REFERENCE_MISMATCH, NOT_CHECKABLE, PASSED)  # worst first
PROBLEMS = (FAILED, ERROR, REFERENCE_MISMATCH)


def num(x) -> float | None:
    """A verdict's numeric field as a float: JSON keeps inf/nan as the strings 'inf'/'nan'."""
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def impl_verdict(counts: Counter) -> str:
    """One word per implementation: FAILED beats ERRORS beats PASSED; nothing run is NOT CHECKED."""
    if counts[FAILED] or counts[REFERENCE_MISMATCH]:
        return "FAILED"
    if counts[ERROR]:
        return "ERRORS"
    if counts[PASSED]:
        return "PASSED"
    return "NOT CHECKED"


def per_implementation(vs: list[Verdict]) -> dict[str, Counter]:
    out: dict[str, Counter] = defaultdict(Counter)
    for v in vs:
        out[v.implementation][v.status] += 1
    return dict(out)


def excess(v: Verdict) -> float:
    """How far over its bound a verdict is: error / bound at the worst entry (the one nearest
    its own bound; max_error when no worst_error is given); the bare error without a bound."""
    e, b = num(v.worst_error), num(v.bound)
    if e is None:
        e = num(v.max_error)
    if e is None:
        return 0.0
    if math.isnan(e) or math.isinf(e):
        return math.inf
    if not b:
        return e
    return e / b


def severity_key(v: Verdict):
    """Sort key: worst status first, then furthest over the bound."""
    return (ORDER.index(v.status) if v.status in ORDER else len(ORDER), -excess(v))


def spec_fields(v: Verdict) -> tuple[str, tuple, str, str]:
    """(architecture, activations, loss, dtype) of a verdict's network, '' where there is none.
    A spec dict written by a plug-in or an older backcheck is described as best it can be."""
    if not isinstance(v.spec, dict):
        return "", (), "", ""
    try:  # the verdicts of one case share a spec: describe each distinct one once
        key = json.dumps(v.spec, sort_keys=True)
    except (TypeError, ValueError):
        return _describe(v.spec)
    return _describe_json(key)


@functools.lru_cache(maxsize=4096)
def _describe_json(key: str) -> tuple[str, tuple, str, str]:
    return _describe(json.loads(key))


def _describe(s: dict) -> tuple[str, tuple, str, str]:
    layers = s.get("layers") if isinstance(s.get("layers"), list) else []
    acts = tuple(str(l.get("activation", "?")) if isinstance(l, dict) else "?" for l in layers)
    try:
        from reference.spec import NetworkSpec
        arch = NetworkSpec.from_dict(s).describe().split(" | ")[0]
    except Exception:  # not a valid spec: still show what it says
        arch = " -> ".join([str(s.get("n_in", "?"))] + [
            f"{l.get('width', '?')}:{l.get('activation', '?')}" if isinstance(l, dict) else "?" for l in layers])
    return arch, acts, str(s.get("loss", "")), str(s.get("dtype", ""))
