"""The terminal rendering of a run: first what is wrong, in words (the diagnosis of each failing
implementation, once, with its one smallest reproducer), then the plug-in errors grouped by
implementation and message, then a per-check summary for every implementation and a compact
per-case table of the fixed set (one column per gradient check). Every failed verdict in full
only with verbose; failures no diagnosis explains are always listed."""
from __future__ import annotations

from collections import Counter, defaultdict

from reference.verdict import ERROR, FAILED, Verdict
from reports.aggregate import ORDER as _ORDER
from reports.aggregate import (PROBLEMS, check_stats, error_groups, impl_verdict, nearness, per_implementation, percent,
                               ratio_text, record, unchecked_groups, undiagnosed)

_MARK = {"passed": "ok", "failed": "FAIL", "error": "ERR", "not_checkable": "n/c", "reference_mismatch": "REF!"}
_SHORT = {"vs_jax": "jax", "vs_fd": "fd", "richardson": "richardson", "slide_fd": "slides", "directional": "dir",
          "intermediates": "deltas", "reference_agreement": "refs"}


def _worst(a: Verdict | None, b: Verdict) -> Verdict:
    if a is None:
        return b
    ka, kb = _ORDER.index(a.status), _ORDER.index(b.status)
    return b if kb < ka or (kb == ka and (nearness(b) or 0) > (nearness(a) or 0)) else a


def _summary_rows(vs: list[Verdict]) -> list[str]:
    """Per implementation and check: the verdicts by status, how many of their entries were decided,
    and error / bound of the checked verdict nearest its bound (an undecided entry has no error)."""
    stats = check_stats(vs, key=lambda v: (v.implementation, v.check))
    lines = [f"{'implementation':<20} {'check':<22} {'verdicts':>8} {'passed':>7} {'failed':>7} {'errors':>7} "
             f"{'not checkable':>14} {'entries':>8} {'decided':>8} {'kinks':>6} {'undecided':>9} {'err/bound':>9}"]
    for (impl, check), s in stats.items():
        nc = s.counts["not_checkable"]
        lines.append(f"{impl[:20]:<20} {check[:22]:<22} {s.n:>8} {s.counts['passed']:>7} {s.n_failed:>7} "
                     f"{s.counts['error']:>7} {f'{nc} ({percent(nc, s.n)})' if nc else '0':>14} "
                     f"{s.entries:>8,} {percent(s.decided, s.entries):>8} {percent(s.kinks, s.entries):>6} "
                     f"{percent(s.undecided, s.entries):>9} {ratio_text(s.worst):>9}")
    lines.append("(decided, kinks, undecided: shares of the entries; err/bound: error / bound at the worst decided "
                 "entry, at most 1 passes)")
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
    out = ["", f"fixed set: {len(rows)} cases (error / bound at the worst decided entry, per check)",
           f"{'implementation':<16} {'case':<{width}} " + " ".join(f"{_SHORT[c]:>11}" for c in checks)]
    for (_, case), cells in shown:
        def cell(c):
            v = cells.get(c)
            if v is None:
                return f"{'':>11}"
            r = nearness(v)
            text = _MARK[v.status] if r is None else f"{_MARK[v.status]} {ratio_text(r)}"
            return f"{text:>11}"
        out.append(f"{cells.get('impl', '')[:16]:<16} {case[:width]:<{width}} " + " ".join(cell(c) for c in checks))
    if len(rows) > len(shown):
        out.append(f"... {len(rows) - len(shown)} more cases (all in the JSON; -v lists them)")
    return out


def diagnosis_lines(diagnoses: list[dict] | None, problems=(), vs: list[Verdict] = ()) -> list[str]:
    """A few sentences per failing implementation, from the results' diagnoses (their JSON, as
    stored: nothing is recomputed): headline, findings, confidence, the smallest reproducer; a
    line for a diagnosis that could not be made, and, where the diagnoses are known (not None:
    the run made them), for a failing implementation without one."""
    lines = []
    for d in diagnoses or []:
        lines += ["", d["headline"] + "."] + [f"  - {s}" for s in d.get("findings") or []]
        if d.get("confidence"):
            lines.append(f"  {d['confidence']}.")
        if d.get("alternatives"):
            lines.append("  also consistent with: " + "; ".join(d["alternatives"]) + ".")
        errors = sum(g.get("count", 0) for g in d.get("errors") or [])
        if errors:
            lines.append(f"  and {errors} plug-in error(s), grouped below.")
        if d.get("reproducer"):
            lines.append(f"  smallest reproducer ({d.get('reproducer_case', '')}); it runs from any folder:")
            lines += ["    " + line for line in d["reproducer"].splitlines()]
    for impl, n in (undiagnosed(diagnoses, vs) if diagnoses is not None else {}).items():
        lines += ["", f"{impl}: {n} failed verdict(s) and no diagnosis: they are listed below."]
    lines += [f"backcheck: {p}" for p in problems]
    return (["What is wrong:"] + lines) if lines else []


def _error_rows(groups) -> list[str]:
    if not groups:
        return []
    width = min(max(len(g.implementation) for g in groups), 30)
    return ["", f"Plug-in errors ({sum(g.count for g in groups)}), by implementation and message:"] + [
        f"  {g.implementation[:width]:<{width}} {g.count:>5} × {g.message}" for g in groups]


def format_table(results, verbose: bool = False, max_rows: int = 40, diagnoses: list | None = None) -> str:
    """`results`: a results document (its diagnoses lead) or a list of verdict records (with the
    diagnoses given apart; without them every failure is listed, as nothing is known to explain it)."""
    problems = ()
    if isinstance(results, dict):
        diagnoses = results.get("diagnoses") if diagnoses is None else diagnoses
        problems, results = results.get("diagnosis_errors") or (), results["verdicts"]
    if diagnoses is not None:
        diagnoses = [d if isinstance(d, dict) else d.to_json() for d in diagnoses]
    vs = [Verdict.from_json(record(v)) for v in results]
    lead = diagnosis_lines(diagnoses, problems, vs) + _error_rows(error_groups(vs))
    lines = (lead + [""] if lead else []) + _summary_rows(vs)
    lines += _case_rows(vs, verbose, max_rows)
    # each failure once: in its implementation's diagnosis; in full (every check of every case)
    # only with verbose, or where no diagnosis explains it
    explained = {d["implementation"] for d in diagnoses or []}
    bad = [v for v in vs if v.status in PROBLEMS]
    listed = bad if verbose else [v for v in bad if v.status != ERROR and v.implementation not in explained]
    if listed:
        lines += ["", f"{len(listed)} problem(s):"]
        for v in listed[:20 if not verbose else None]:
            lines.append(v.explain())
        if len(listed) > 20 and not verbose:
            lines.append(f"... {len(listed) - 20} more (all in the JSON and the HTML report)")
    ids = {id(v) for v in listed}
    summed = Counter(v.status for v in bad if id(v) not in ids)
    if summed:
        where = [f"{summed[FAILED]} failed verdict(s) in the diagnosis" if summed[FAILED] else "",
                 f"{summed[ERROR]} error verdict(s) in the grouped errors" if summed[ERROR] else ""]
        lines += ["", f"Summed up above: {' and '.join(filter(None, where))} (-v lists each with its reproducer; "
                      "all are in the JSON and the HTML report)"]
    unchecked = unchecked_groups(vs)
    if unchecked:
        lines += ["", "Not checked (not declared by the implementation):"]
        lines += [f"  {n:>5} x {m} ({', '.join(impls)})" for m, n, impls in unchecked[:None if verbose else 10]]
        if len(unchecked) > 10 and not verbose:
            lines.append(f"  ... {len(unchecked) - 10} more (-v lists them)")
    counts = Counter(v.status for v in vs)
    lines.append("")
    for impl, c in per_implementation(vs).items():
        lines.append(f"{impl}: {impl_verdict(c)} — " + ", ".join(f"{c[s]} {s}" for s in _ORDER if c[s]))
    lines.append(f"total: {len(vs)} verdicts — " + ", ".join(f"{counts[s]} {s}" for s in _ORDER if counts[s]))
    return "\n".join(lines)
