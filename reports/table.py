"""The terminal rendering of verdict records: a per-check summary for every implementation, a
compact per-case table of the fixed set (one column per gradient check), problems in full."""
from __future__ import annotations

from collections import Counter, defaultdict

from reference.verdict import Verdict
from reports.aggregate import ORDER as _ORDER
from reports.aggregate import PROBLEMS, impl_verdict, num, per_implementation

_MARK = {"passed": "ok", "failed": "FAIL", "error": "ERR", "not_checkable": "n/c", "reference_mismatch": "REF!"}
_SHORT = {"vs_jax": "jax", "vs_fd": "fd", "richardson": "richardson", "slide_fd": "slides", "directional": "dir",
          "intermediates": "deltas", "reference_agreement": "refs"}


def _err(x) -> str:
    x = num(x)
    return "-" if x is None else f"{x:.0e}"


def _worst(a: Verdict | None, b: Verdict) -> Verdict:
    if a is None:
        return b
    ka, kb = _ORDER.index(a.status), _ORDER.index(b.status)
    return b if kb < ka or (kb == ka and (num(b.max_error) or 0) > (num(a.max_error) or 0)) else a


def _summary_rows(vs: list[Verdict]) -> list[str]:
    groups: dict = defaultdict(list)
    for v in vs:
        groups[(v.implementation, v.check)].append(v)
    lines = [f"{'implementation':<22} {'check':<24} {'verdicts':>8} {'passed':>7} {'n/c':>5} {'failed':>7} "
             f"{'errors':>7} {'max rel err':>12} {'kinks':>6}"]
    for (impl, check), g in sorted(groups.items()):
        c = Counter(v.status for v in g)
        errs = [num(v.max_error) for v in g if num(v.max_error) is not None and v.status != "not_checkable"]
        lines.append(f"{impl[:22]:<22} {check[:24]:<24} {len(g):>8} {c['passed']:>7} {c['not_checkable']:>5} "
                     f"{c['failed'] + c['reference_mismatch']:>7} {c['error']:>7} "
                     f"{(f'{max(errs):.1e}' if errs else '-'):>12} {sum(v.n_kinks for v in g):>6}")
    return lines


def _case_rows(vs: list[Verdict], verbose: bool, max_rows: int) -> list[str]:
    fixed = [v for v in vs if "test_fixed" in str(v.extra.get("test", "")) and v.check in _SHORT]
    if not fixed:
        return []
    checks = [c for c in _SHORT if any(v.check == c for v in fixed)]
    by_case: dict = defaultdict(dict)
    for v in fixed:
        impl = v.implementation if v.implementation != "reference" else None
        key = (v.extra.get("test", ""), v.case)
        by_case[key][v.check] = _worst(by_case[key].get(v.check), v)
        if impl:
            by_case[key]["impl"] = impl
    rows = sorted(by_case.items(), key=lambda kv: (min(_ORDER.index(v.status) for k, v in kv[1].items() if k != "impl"),
                                                    kv[0]))
    shown = rows if verbose else rows[:max_rows]
    width = min(max(len(k[1]) for k, _ in shown), 58)
    out = ["", f"fixed set: {len(rows)} cases (worst relative error per check)",
           f"{'implementation':<16} {'case':<{width}} " + " ".join(f"{_SHORT[c]:>11}" for c in checks)]
    for (_, case), cells in shown:
        def cell(c):
            v = cells.get(c)
            if v is None:
                return f"{'':>11}"
            text = _MARK[v.status] if v.max_error is None or v.status == "not_checkable" else \
                f"{_MARK[v.status]} {_err(v.max_error)}"
            return f"{text:>11}"
        out.append(f"{cells.get('impl', '')[:16]:<16} {case[:width]:<{width}} " + " ".join(cell(c) for c in checks))
    if len(rows) > len(shown):
        out.append(f"... {len(rows) - len(shown)} more cases (all in the JSON; -v lists them)")
    return out


def format_table(verdicts: list[dict], verbose: bool = False, max_rows: int = 40) -> str:
    vs = [Verdict.from_json(v) for v in verdicts]
    lines = _summary_rows(vs)
    lines += _case_rows(vs, verbose, max_rows)
    bad = [v for v in vs if v.status in PROBLEMS]
    if bad:
        lines += ["", f"{len(bad)} problem(s):"]
        for v in bad[:20 if not verbose else None]:
            lines.append(v.explain())
        if len(bad) > 20 and not verbose:
            lines.append(f"... {len(bad) - 20} more (all in the JSON and the HTML report)")
    unchecked = sorted({v.message for v in vs if v.check == "declared"})
    if unchecked:
        lines += ["", "not checked (outside what the implementation declares):"] + [f"  {m}" for m in unchecked[:10]]
    counts = Counter(v.status for v in vs)
    lines.append("")
    for impl, c in per_implementation(vs).items():
        lines.append(f"{impl}: {impl_verdict(c)} — " + ", ".join(f"{c[s]} {s}" for s in _ORDER if c[s]))
    lines.append(f"total: {len(vs)} verdicts — " + ", ".join(f"{counts[s]} {s}" for s in _ORDER if counts[s]))
    return "\n".join(lines)
