"""The one result record every check produces (gradient checks, perceptron bounds, training
rules, plug-in errors). The CLI table, the JSON results and the HTML report all render it."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Status values. "failed" is a wrong gradient (or bound, or rule) of the implementation under
# test; "error" is an implementation that could not be checked (raised, hung, returned junk);
# "reference_mismatch" means the two references disagree: a harness bug, not the plug-in's;
# "not_checkable" means no meaningful bound exists for this input (the reason says why).
PASSED, FAILED, ERROR, NOT_CHECKABLE, REFERENCE_MISMATCH = (
    "passed", "failed", "error", "not_checkable", "reference_mismatch")
STATUSES = (PASSED, FAILED, ERROR, NOT_CHECKABLE, REFERENCE_MISMATCH)


@dataclass
class Entry:
    """One parameter (or intermediate) entry: layer is 1-based, param is 'W', 'b', 'delta', 'cost'..."""
    layer: int
    param: str
    index: tuple

    def __str__(self) -> str:
        if self.param == "cost":
            return "cost"
        if self.param == "direction":   # not a parameter: the derivative along a direction (1-based)
            return "vᵀ∇C along direction v" + (f"{self.index[0] + 1}" if self.index else "")
        idx = ",".join(str(i) for i in self.index)
        return f"layer {self.layer} {self.param}[{idx}]"


@dataclass
class Verdict:
    check: str                       # "vs_jax", "vs_fd", "slide_fd", "richardson", "directional", ...
    status: str
    implementation: str = "numpy-builtin"
    spec: dict | None = None         # NetworkSpec.to_dict(), when there is a network
    case: str = ""                   # short human description of the case
    max_error: float | None = None   # worst per-entry relative error
    median_error: float | None = None
    bound: float | None = None       # the bound applied to the worst entry
    worst: Entry | None = None
    worst_values: tuple | None = None  # (implementation value, reference value) at the worst entry
    worst_error: float | None = None   # relative error at the worst entry (the one nearest its bound)
    n_entries: int = 0
    n_kinks: int = 0                 # entries reported as non-differentiable points
    n_undecided: int = 0             # entries the checker could not decide (e.g. slide checker at w = 0)
    message: str = ""
    reproducer: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (PASSED, NOT_CHECKABLE)

    def summary(self) -> str:
        """One line: what, where, how wrong, against which bound."""
        head = f"[{self.status}] {self.check} {self.implementation}: {self.case}"
        if self.status in (ERROR, NOT_CHECKABLE) and self.message:
            return f"{head}: {self.message}"
        parts = [head]
        if self.max_error is not None:
            parts.append(f"max rel err {_fmt(self.max_error)}")
        if self.worst is not None and self.worst_error is not None and self.bound is not None:
            vals = ""
            if self.worst_values is not None and self.status != PASSED:
                vals = " (impl {:.17g} vs ref {:.17g})".format(*self.worst_values)
            parts.append(f"worst {self.worst}: rel err {_fmt(self.worst_error)} vs bound {_fmt(self.bound)}{vals}")
        if self.n_kinks:
            parts.append(f"{self.n_kinks} kink entries")
        if self.n_undecided:
            parts.append(f"{self.n_undecided} undecided")
        if self.message and self.status != PASSED:
            parts.append(self.message)
        return "; ".join(parts)

    def explain(self) -> str:
        """The multi-line failure text: summary, architecture and the reproducer."""
        lines = [self.summary()]
        if self.spec:
            lines.append(f"  network: {self.case}")
        if self.reproducer:
            lines.append("  reproduce with:")
            lines.extend("    " + l for l in self.reproducer.splitlines())
        return "\n".join(lines)

    def to_json(self) -> dict:
        d = asdict(self)
        d["worst"] = None if self.worst is None else {
            "layer": self.worst.layer, "param": self.worst.param, "index": list(self.worst.index)}
        d["worst_values"] = None if self.worst_values is None else [_num(v) for v in self.worst_values]
        for k in ("max_error", "median_error", "bound", "worst_error"):
            d[k] = _num(d[k])
        d["extra"] = _jsonable(self.extra)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Verdict":
        d = dict(d)
        if d.get("worst") is not None:
            w = d["worst"]
            d["worst"] = Entry(w["layer"], w["param"], tuple(w["index"]))
        if d.get("worst_values") is not None:
            d["worst_values"] = tuple(d["worst_values"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def _fmt(v) -> str:
    return v if isinstance(v, str) else f"{v:.3g}"


def _num(v):
    """JSON has no inf/nan: keep them as strings so nothing is lost."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else repr(v)


def _jsonable(x: Any):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, float):
        return _num(x)
    return x
