"""The terminal rendering of verdict records: a compact per-case table and a summary."""
from __future__ import annotations

from collections import Counter, defaultdict

from reference.verdict import Verdict
from reports.aggregate import ORDER as _ORDER
from reports.aggregate import PROBLEMS, impl_verdict, per_implementation


def _err(x) -> str:
    if x is None:
        return "-"
    return x if isinstance(x, str) else f"{x:.1e}"


def format_table(verdicts: list[dict], verbose: bool = False, max_rows: int = 60) -> str:
    vs = [Verdict.from_json(v) for v in verdicts]
    lines = []
    # per case: one row, one column per check kind (worst status and error)
    checks = sorted({v.check for v in vs})
    by_case: dict = defaultdict(dict)
    for v in vs:
        key = (v.implementation, v.case or v.extra.get("test", ""))
        prev = by_case[key].get(v.check)
        if prev is None or _ORDER.index(v.status) < _ORDER.index(prev.status) or (
                v.status == prev.status and (v.max_error or 0) > (prev.max_error or 0)):
            by_case[key][v.check] = v
    rows = sorted(by_case.items(), key=lambda kv: min(_ORDER.index(v.status) for v in kv[1].values()))
    if not verbose:
        rows = rows[:max_rows]
    width = max([len(k[1]) for k, _ in rows] + [4])
    width = min(width, 60)
    lines.append(f"{'implementation':<16} {'case':<{width}} " + " ".join(f"{c:>14}" for c in checks))
    for (impl, case), cells in rows:
        def cell(c):
            v = cells.get(c)
            if v is None:
                return f"{'':>14}"
            mark = {"passed": "ok", "failed": "FAIL", "error": "ERROR", "not_checkable": "n/c",
                    "reference_mismatch": "REFMISMATCH"}[v.status]
            return f"{mark + ' ' + _err(v.max_error) if v.max_error is not None else mark:>14}"
        lines.append(f"{impl[:16]:<16} {case[:width]:<{width}} " + " ".join(cell(c) for c in checks))
    if len(by_case) > len(rows):
        lines.append(f"... {len(by_case) - len(rows)} more cases (all in the JSON; -v lists them)")
    # failures in full
    bad = [v for v in vs if v.status in PROBLEMS]
    if bad:
        lines.append("")
        lines.append(f"{len(bad)} problem(s):")
        for v in bad[:20 if not verbose else None]:
            lines.append(v.explain())
    # summary
    counts = Counter(v.status for v in vs)
    lines.append("")
    for impl, c in per_implementation(vs).items():
        lines.append(f"{impl}: {impl_verdict(c)} — " + ", ".join(f"{c[s]} {s}" for s in _ORDER if c[s]))
    lines.append(f"total: {len(vs)} verdicts — " + ", ".join(f"{counts[s]} {s}" for s in _ORDER if counts[s]))
    return "\n".join(lines)
