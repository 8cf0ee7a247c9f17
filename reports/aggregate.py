"""Summaries of verdict records shared by the terminal table and the HTML report."""
from __future__ import annotations

import functools
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from reference.verdict import ERROR, FAILED, NOT_CHECKABLE, PASSED, REFERENCE_MISMATCH, Verdict

ORDER = (FAILED, ERROR, REFERENCE_MISMATCH, NOT_CHECKABLE, PASSED)  # worst first
PROBLEMS = (FAILED, ERROR, REFERENCE_MISMATCH)
CHECKED = (PASSED, FAILED, REFERENCE_MISMATCH)  # compared numbers with a bound


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


def record(x) -> dict:
    """One verdict record as a dict: test reports may carry it as a JSON string (user_properties
    must survive pytest-xdist's serialisation) or as the dict itself."""
    return json.loads(x) if isinstance(x, (str, bytes)) else x


def at_worst(v: Verdict) -> float | None:
    """The error at the entry nearest its bound (the one compared with `bound`); max_error when a
    check names no worst entry."""
    e = num(v.worst_error)
    return num(v.max_error) if e is None else e


def n_decided(v: Verdict) -> int:
    """Entries the check decided: neither kinks nor undecided (the fields are in every record)."""
    return max(v.n_entries - v.n_kinks - v.n_undecided, 0)


def excess(v: Verdict) -> float:
    """How far over its bound a verdict is: error / bound at the worst entry; the bare error
    without a bound; 0 without an error. For sorting: `nearness` is the figure to show."""
    e, b = at_worst(v), num(v.bound)
    if e is None:
        return 0.0
    if math.isnan(e):
        return math.inf
    if b is None:
        return e
    if b <= 0:  # a zero bound admits only an exact match
        return 0.0 if e == 0 else math.inf
    return e / b


def checked(v: Verdict) -> bool:
    """A verdict that compared numbers with a bound and decided: passed, failed or a reference
    mismatch, with at least one decided entry (a check without entries, e.g. a training rule,
    decides as a whole). Only these give errors, colours and worst figures: the relative error
    is at most 1, so an undecided entry's "error" says nothing."""
    return v.status in CHECKED and (not v.n_entries or n_decided(v) > 0)


def nearness(v: Verdict) -> float | None:
    """error / bound at the worst decided entry of a checked verdict (at most 1 passes), None
    when the verdict decided nothing or has no bound to be near."""
    if not checked(v) or at_worst(v) is None or num(v.bound) is None:
        return None
    return excess(v)


def undeclared(v: Verdict) -> bool:
    """Work the implementation did not declare: recorded as not checkable, reported once in the
    "not checked" list, never as a check's own verdict."""
    return v.status == NOT_CHECKABLE and (v.check == "declared" or (v.message or "").startswith("not declared"))


def unchecked_groups(vs: list[Verdict]) -> list[tuple[str, int, list[str]]]:
    """The undeclared verdicts grouped by message: (message, how many, implementations), most first."""
    groups: dict[str, list] = {}
    for v in vs:
        if undeclared(v):
            g = groups.setdefault(v.message or f"not declared: {v.check}", [0, set()])
            g[0] += 1
            g[1].add(v.implementation)
    return sorted(((m, n, sorted(i)) for m, (n, i) in groups.items()), key=lambda g: (-g[1], g[0]))


def percent(n: int, total: int) -> str:
    """n of total as a short percentage; never rounded to 0% or 100% when it is not."""
    if not total:
        return "-"
    p = 100.0 * n / total
    if n == 0 or n == total:
        return f"{p:.0f}%"
    return "<0.1%" if p < 0.1 else ">99.9%" if p > 99.9 else f"{p:.1f}%"


def sci(x, digits: int = 2) -> str:
    """A numeric field in scientific notation; "–" when there is none, "inf"/"nan" as such."""
    v = num(x)
    if v is None:
        return "–"
    if not math.isfinite(v):
        return str(v)
    return "0" if v == 0 else f"{v:.{digits}e}"


def ratio_text(r: float | None) -> str:
    """An error / bound figure: two digits are all a reader needs."""
    if r is None:
        return "-"
    return "0" if r == 0 else "inf" if math.isinf(r) else f"{r:.2g}"


@dataclass
class CheckStats:
    """One check's verdicts (of one implementation, or of all): how many were decided and how
    near the nearest came to its bound."""
    counts: Counter = field(default_factory=Counter)
    entries: int = 0
    decided: int = 0
    kinks: int = 0
    undecided: int = 0
    nearest: Verdict | None = None        # the checked verdict nearest (or furthest over) its bound
    errors: list = field(default_factory=list)  # worst errors of the checked verdicts
    reasons: Counter = field(default_factory=Counter)  # why not checkable

    def add(self, v: Verdict) -> None:
        self.counts[v.status] += 1
        self.entries += v.n_entries
        self.decided += n_decided(v)
        self.kinks += v.n_kinks
        self.undecided += v.n_undecided
        if v.status == NOT_CHECKABLE:
            self.reasons[v.message or "(no reason given)"] += 1
        r = nearness(v)
        if r is not None and (self.nearest is None or r > nearness(self.nearest)):
            self.nearest = v
        e = num(v.max_error)
        if checked(v) and e is not None:
            self.errors.append(e)

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    @property
    def n_failed(self) -> int:
        return self.counts[FAILED] + self.counts[REFERENCE_MISMATCH]

    @property
    def worst(self) -> float | None:
        return None if self.nearest is None else nearness(self.nearest)

    def describe(self) -> str:
        """e.g. "412 passed, 0 failed, 3 not checkable (0.7%); 97.8% of 9,120 entries decided,
        1.9% kinks, 0.3% undecided"."""
        c = self.counts
        out = (f"{c[PASSED]} passed, {self.n_failed} failed, " + (f"{c[ERROR]} errors, " if c[ERROR] else "")
               + f"{c[NOT_CHECKABLE]} not checkable ({percent(c[NOT_CHECKABLE], self.n)})")
        if self.entries:
            out += (f"; {percent(self.decided, self.entries)} of {self.entries:,} entries decided, "
                    f"{percent(self.kinks, self.entries)} kinks, {percent(self.undecided, self.entries)} undecided")
        return out


def check_stats(vs: list[Verdict], key=lambda v: v.check) -> dict:
    """CheckStats per key (the check kind by default), undeclared work left out: it is listed
    on its own (unchecked_groups), since no check ran."""
    out: dict = defaultdict(CheckStats)
    for v in vs:
        if not undeclared(v):
            out[key(v)].add(v)
    return dict(sorted(out.items()))


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


def undiagnosed(diagnoses: list[dict], vs: list[Verdict]) -> Counter:
    """Failed verdicts per implementation that no diagnosis explains (the references' own
    mismatches are a harness problem, never an implementation's)."""
    named = {d.get("implementation") for d in diagnoses}
    return Counter(v.implementation for v in vs if v.status == FAILED and v.implementation not in named)


def error_groups(vs: list[Verdict]) -> list:
    """Plug-in errors grouped by implementation and message (properties.diagnosis.group_errors);
    imported only when there is an error to group, since it loads JAX."""
    if not any(v.status == ERROR for v in vs):
        return []
    from properties.diagnosis import group_errors
    return group_errors(vs)
