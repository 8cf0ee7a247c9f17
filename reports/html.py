"""The self-contained HTML accuracy report, rendered from a results document (reports/SCHEMA.md).
It leads with what is wrong, in words (the diagnoses stored in the document); the failures and
every verdict follow, collapsed.

One file, no network: inline CSS, inline SVG plots, server-side tables; a few lines of inline
script add sorting, filtering and copy buttons (reports/assets.py), and a Content-Security-Policy
forbids every other script and every fetch. Every string that came from a plug-in or a test goes
through `esc`. Long lists are capped with a summary line; the JSON keeps every verdict.
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import math
import os
from collections import Counter

from reference.verdict import ERROR, FAILED, NOT_CHECKABLE, PASSED, REFERENCE_MISMATCH, Verdict
from reports import plots
from reports.aggregate import (ORDER, PROBLEMS, at_worst, check_stats, checked, error_groups, excess, impl_verdict,
                               nearness, num, per_implementation, percent, ratio_text, record, sci, severity_key,
                               spec_fields, undeclared, unchecked_groups, undiagnosed)
from reports.assets import CSS, JS
from reports.svg import esc

MAX_PROBLEMS = 30     # failure entries (one line each, the first few unfolded)
OPEN_PROBLEMS = 3
MAX_ERRORS = 100      # plug-in error rows
MAX_ROWS = 500        # rows of the all-verdicts table
MAX_REASONS = 40      # lines of a list of reasons (not checkable, not declared)
LABEL = {PASSED: "passed", FAILED: "failed", ERROR: "error", NOT_CHECKABLE: "not checkable",
         REFERENCE_MISMATCH: "reference mismatch"}
IMPL_ORDER = ("FAILED", "ERRORS", "NOT CHECKED", "PASSED")


# --- formatting ------------------------------------------------------------------------------

def _sortval(x) -> str:
    """data-v for numeric sorting; '' sorts first."""
    v = num(x)
    return "" if v is None or math.isnan(v) else repr(v)


def _td_num(x, fmt=sci) -> str:
    return f'<td class="n" data-v="{_sortval(x)}">{esc(fmt(x))}</td>'


def _count(n: int, cls: str = "") -> str:
    c = ' class="n zero"' if not n else (f' class="n {cls}"' if cls else ' class="n"')
    return f'<td{c} data-v="{n}">{n:,}</td>'


def _badge(status: str) -> str:
    return f'<span class="badge s-{esc(status)}">{esc(LABEL.get(status, status))}</span>'


def _impl_badge(word: str) -> str:
    return f'<span class="badge v-{word.replace(" ", "-")}">{esc(word)}</span>'


# error / bound bands: how near its bound a check came. Only "over" (a failure) is red.
NEAR_BANDS = (("n0", 1e-3, "error / bound < 0.001"), ("n1", 0.1, "0.001 – 0.1"), ("n2", 1.0, "0.1 – 1: near the bound"),
              ("n3", math.inf, "> 1: over the bound (failed)"))


def _near_class(r: float | None) -> str:
    """CSS class of an error / bound figure; grey (not checkable) without one."""
    if r is None:
        return "nc"
    return next(c for c, top, _ in NEAR_BANDS if r <= top or c == "n3")


def _near_legend(over: bool) -> str:
    """The key of the error / bound colours; the red "over" swatch only when something is over."""
    bands = [b for b in NEAR_BANDS if over or b[0] != "n3"] + [("nc", 0, "not checkable: no decided entry")]
    return '<div class="legend">' + "".join(f'<span><i class="sw {c}"></i>{esc(t)}</span>' for c, _, t in bands) + "</div>"


def _duration(s) -> str:
    s = num(s)
    if s is None:
        return "–"
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {int(s % 60)} s"


def _when(iso) -> str:
    try:
        t = _dt.datetime.fromisoformat(str(iso)).astimezone(_dt.timezone.utc)
    except ValueError:
        return str(iso)
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _value(x) -> str:
    v = num(x)
    return "–" if v is None else f"{v:.17g}"


def _scalar(x) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _network(v: Verdict) -> str:
    arch, _acts, loss, dtype = spec_fields(v)
    return f"{arch} | {loss}, {dtype}" if arch else v.case


def _cap_row(shown: int, total: int, cols: int, what: str) -> str:
    if total <= shown:
        return ""
    return (f'<tfoot><tr class="cap"><td colspan="{cols}">Showing {shown:,} of {total:,} {what}; '
            f'all {total:,} are in the JSON results.</td></tr></tfoot>')


def _section(id_: str, title: str, body: str, lead: str = "") -> str:
    lead = f'<p class="lead">{lead}</p>' if lead else ""
    return f'<section id="{id_}"><h2>{title}</h2>{lead}{body}</section>'


# --- sections --------------------------------------------------------------------------------

def _diagnosis(diagnoses: list[dict] | None, problems: list[str], vs) -> str:
    """What is wrong, first: per failing implementation its diagnosis in words (as stored in the
    results: nothing is recomputed), its confidence and its one smallest reproducer; a line for a
    failing implementation without one and for a diagnosis that could not be made. Empty for a
    run with nothing wrong."""
    parts = []
    for d in diagnoses or []:
        findings = "".join(f"<li>{esc(s)}</li>" for s in d.get("findings") or [])
        alt = d.get("alternatives") or []
        errors = sum(g.get("count", 0) for g in d.get("errors") or [] if isinstance(g, dict))
        repro = ""
        if d.get("reproducer"):
            repro = (f'<p class="repro-head">Smallest reproducer: <span class="mono">{esc(d.get("reproducer_case", ""))}'
                     '</span>. It runs from any folder (save it as a file and run it with python); it prints the '
                     'check\u2019s verdict and the wrong block entry by entry.</p>'
                     f'<div class="repro-box"><pre class="repro"><code>{esc(d["reproducer"])}</code></pre></div>')
        parts.append(
            f'<article class="diag"><p class="headline">{esc(d["headline"])}.</p>'
            + (f'<ul class="findings">{findings}</ul>' if findings else "")
            + (f'<p class="confidence">{esc(d["confidence"])}.</p>' if d.get("confidence") else "")
            + (f'<p class="alt">Also consistent with: {esc("; ".join(alt))}.</p>' if alt else "")
            + (f'<p class="alt">And {errors:,} plug-in error(s): <a href="#errors">grouped below</a>.</p>'
               if errors else "")
            + repro + "</article>")
    for impl, n in (undiagnosed(diagnoses, vs) if diagnoses is not None else {}).items():
        parts.append(f'<article class="diag"><p class="headline">{esc(impl)}: {n:,} failed verdict(s) and no '
                     'diagnosis.</p><p class="alt">Its failures are listed under <a href="#failures">Failures</a>.'
                     '</p></article>')
    parts += [f'<p class="cap">{esc(p)}</p>' for p in problems]
    if not parts:
        return ""
    return _section("diagnosis", "What is wrong", "".join(parts),
                    "One diagnosis per failing implementation, from every case of the run and cases built to "
                    "settle it; every verdict is in the collapsed details below.")


def _header(vs, counts_by_impl) -> str:
    words = [impl_verdict(c) for c in counts_by_impl.values()]
    overall = next((w for w in IMPL_ORDER if w in words), "NOT CHECKED")
    total = Counter("not declared" if undeclared(v) else LABEL[v.status] for v in vs)
    bits = [f"{total[w]:,} {w}" for w in [LABEL[s] for s in ORDER] + ["not declared"] if total[w]]
    sub = f"{len(vs):,} verdicts on {len(counts_by_impl)} implementation(s)" + (f": {', '.join(bits)}" if bits else "")
    return (f'<header class="top v-{overall.replace(" ", "-")}"><div><h1>backcheck accuracy report</h1>'
            f'<p class="sub">{esc(sub)}</p></div><div class="overall">{esc(overall)}</div></header>')


def _implementations(vs, counts_by_impl) -> str:
    # per implementation, the checked verdict nearest (or furthest over) its bound: a not-checkable
    # verdict is the most severe of a passing run but decided nothing, so it has no figure to give
    stats = check_stats(vs, key=lambda v: v.implementation)
    skipped = Counter(v.implementation for v in vs if undeclared(v))
    rows, tot = [], Counter()
    for impl in sorted(counts_by_impl, key=lambda i: (IMPL_ORDER.index(impl_verdict(counts_by_impl[i])), i)):
        c, w = counts_by_impl[impl], getattr(stats.get(impl), "nearest", None)
        tot.update(c)
        tot["undeclared"] += skipped[impl]
        rows.append(
            f'<tr><td class="name">{esc(impl)}</td><td>{_impl_badge(impl_verdict(c))}</td>{_count(c[PASSED])}'
            f'{_count(c[FAILED], "bad")}{_count(c[ERROR], "bad")}{_count(c[NOT_CHECKABLE] - skipped[impl])}'
            f'{_count(skipped[impl])}{_count(c[REFERENCE_MISMATCH], "bad")}{_count(sum(c.values()))}'
            + _td_nearest(w) + '</tr>')
    foot = (f'<tfoot><tr><td>total</td><td></td>{_count(tot[PASSED])}{_count(tot[FAILED], "bad")}'
            f'{_count(tot[ERROR], "bad")}{_count(tot[NOT_CHECKABLE] - tot["undeclared"])}{_count(tot["undeclared"])}'
            f'{_count(tot[REFERENCE_MISMATCH], "bad")}{_count(sum(tot[s] for s in ORDER))}<td></td></tr></tfoot>'
            ) if len(rows) > 1 else ""
    table = ('<div class="wrap"><table class="sortable compact"><thead><tr><th>implementation</th><th>verdict</th>'
             '<th class="n">passed</th><th class="n">failed</th><th class="n">errors</th><th class="n">not checkable</th>'
             '<th class="n">not declared</th><th class="n">ref. mismatch</th><th class="n">total</th>'
             '<th class="n" title="at the worst decided entry of the checked verdict closest to (or furthest over) '
             'its bound">error / bound</th>'
             f'</tr></thead><tbody>{"".join(rows)}</tbody>{foot}</table></div>')
    note = ('<p class="note">Not checkable: no meaningful bound exists for that input (every entry a kink or '
            'undecided; each verdict says why). Not declared: the implementation does not declare that work, so it '
            'was not generated (listed once, below). Error / bound comes only from entries a check decided. '
            'Reference mismatch: JAX and finite differences disagree, a harness problem rather than the plug-in’s '
            '(listed under the “reference” implementation).</p>')
    return _section("summary", "Verdict per implementation", table + note)


def _td_nearest(v: Verdict | None, short: bool = False) -> str:
    """error / bound of a checked verdict: "error / bound" and the ratio (short: the ratio, the
    rest on hover); a dash without one."""
    r = None if v is None else nearness(v)
    if r is None:
        return '<td class="n" data-v="">–</td>'
    values = f"{sci(at_worst(v), 1)} / {sci(v.bound, 0)}"
    where = f"{v.check}: {_network(v)}"
    tip, shown = (f"{values} at {where}", "") if short else (where, esc(values) + " ")
    return (f'<td class="n" data-v="{_sortval(r)}" title="{esc(tip)}">{shown}'
            f'<span class="{_near_class(r)} pill">{esc(ratio_text(r))}</span></td>')


def _meta(meta: dict) -> str:
    versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    impls = meta.get("implementations")
    workers = meta.get("workers")
    items = [
        ("finished", _when(meta["finished"]) if meta.get("finished") else None),
        ("duration", _duration(meta.get("duration"))),
        ("hypothesis profile", meta.get("hypothesis_profile")), ("seed", meta.get("seed")),
        ("pytest-xdist workers", "serial" if workers in (0, "0") else workers),
        ("implementations asked for", ", ".join(map(str, impls)) if isinstance(impls, list) else impls),
    ] + [(name, versions.get(name)) for name in ("backcheck", "jax", "numpy", "hypothesis", "python")]
    cells = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc('–' if v in (None, '') else v)}</dd></div>" for k, v in items)
    return _section("run", "Run", f'<dl class="meta">{cells}</dl>')


def _problems(vs, open_first: int = OPEN_PROBLEMS) -> str:
    bad = sorted((v for v in vs if v.status in (FAILED, REFERENCE_MISMATCH)), key=severity_key)
    if not bad:
        return _section("failures", "Failures", "<p>No check failed: every gradient, bound and rule agreed with "
                                                "the references within its error model.</p>")
    # the worst of each (implementation, check) first, so every kind of failure is in view
    firsts, seen = [], set()
    for v in bad:
        if (v.implementation, v.check) not in seen:
            seen.add((v.implementation, v.check))
            firsts.append(v)
    ids = {id(v) for v in firsts}
    shown = (firsts + [v for v in bad if id(v) not in ids])[:MAX_PROBLEMS]
    cards = "".join(_problem_card(v, i < open_first) for i, v in enumerate(shown))
    more = (f'<p class="cap">Showing {len(shown)} of {len(bad):,} failures (the worst of each implementation and '
            f'check, then the worst of the rest); all are in the JSON results.</p>' if len(bad) > len(shown) else "")
    return _section("failures", f"Failures ({len(bad):,})", _failure_matrix(bad) + cards + more,
                    "The worst failure of each implementation and check first, each furthest over its bound; "
                    "a line unfolds to the values and a reproducer that runs as written.")


def _failure_matrix(bad) -> str:
    """Failures per implementation and check kind: which checks caught what, at a glance."""
    counts = Counter((v.implementation, v.check) for v in bad)
    impls = sorted({i for i, _ in counts})
    checks = sorted({c for _, c in counts})
    head = "".join(f'<th class="n">{esc(c)}</th>' for c in checks)
    rows = "".join(f'<tr><td class="name">{esc(i)}</td>' + "".join(_count(counts[i, c], "bad") for c in checks)
                   + "</tr>" for i in impls)
    return (f'<div class="wrap"><table class="matrix"><thead><tr><th>failures by check</th>{head}</tr></thead>'
            f'<tbody>{rows}</tbody></table></div>')


def _problem_card(v: Verdict, open_: bool) -> str:
    worst = at_worst(v)
    head = [f"{_badge(v.status)} <strong>{esc(v.check)}</strong>", esc(v.implementation)]
    if v.worst is not None:
        head.append(f'<span class="mono">{esc(v.worst)}</span>')
    if num(worst) is not None:
        head.append(f'error <span class="mono bad">{esc(sci(worst))}</span>'
                    + (f' &gt; bound <span class="mono">{esc(sci(v.bound))}</span>' if num(v.bound) else ""))
    elif v.message:
        head.append(esc(v.message))
    rows = [("network", _network(v))]
    if v.case and v.case != rows[0][1]:
        rows.append(("case", v.case))
    if v.worst is not None:
        rows.append(("worst entry", str(v.worst)))
    if v.worst_values is not None and len(v.worst_values) == 2:
        rows += [("implementation value", _value(v.worst_values[0])), ("reference value", _value(v.worst_values[1]))]
    if num(worst) is not None:
        over = excess(v)
        ratio = f" ({over:.3g}× the bound)" if num(v.bound) and math.isfinite(over) else ""
        rows.append(("relative error", f"{sci(worst)} against bound {sci(v.bound)}{ratio}"))
    if num(v.max_error) is not None:
        entries = f" over {v.n_entries:,} entries" if v.n_entries else ""
        rows.append(("max / median error", f"{sci(v.max_error)} / {sci(v.median_error)}{entries}"))
    if v.n_kinks or v.n_undecided:
        rows.append(("kinks / undecided", f"{v.n_kinks} kink entries, {v.n_undecided} undecided"))
    # check-specific scalars (a perceptron's k, bound and ratio...); anything bigger stays in the JSON
    rows += [(str(k), _scalar(x)) for k, x in v.extra.items()
             if k != "test" and isinstance(x, (int, float, str)) and len(str(x)) <= 80]
    if v.extra.get("test"):
        rows.append(("test", v.extra["test"]))
    mono = ' class="mono"'
    dl = "".join(f"<dt>{esc(k)}</dt><dd{mono if k.endswith('value') else ''}>{esc(val)}</dd>"
                 for k, val in rows if val)
    msg = f'<p class="msg">{esc(v.message)}</p>' if v.message else ""
    return (f'<details class="problem {esc(v.status)}"{" open" if open_ else ""}><summary>'
            f'{" · ".join(head)}<span class="where">{esc(_network(v))}</span></summary>'
            f'<dl>{dl}</dl>{msg}{_reproducer(v)}</details>')


def _reproducer(v: Verdict) -> str:
    if not v.reproducer:
        return '<p class="cap">No reproducer recorded for this check.</p>'
    return f'<div class="repro-box"><pre class="repro"><code>{esc(v.reproducer)}</code></pre></div>'


def _errors(vs) -> str:
    errs = sorted((v for v in vs if v.status == ERROR), key=lambda v: (v.implementation, v.check))
    if not errs:
        return _section("errors", "Plug-in errors", "<p>None: every implementation loaded and answered every call.</p>")
    groups = error_groups(errs)
    grouped = "".join(f'<tr><td class="name">{esc(g.implementation)}</td>{_count(g.count, "bad")}'
                      f'<td class="message">{esc(g.message or "(no message)")}</td></tr>' for g in groups[:MAX_ERRORS])
    grouped = ('<div class="wrap"><table class="sortable errors"><thead><tr><th>implementation</th><th class="n">count'
               f'</th><th>message (the first of its group in full; others differ only in numbers)</th></tr></thead>'
               f'<tbody>{grouped}</tbody>{_cap_row(min(len(groups), MAX_ERRORS), len(groups), 3, "kinds of error")}'
               '</table></div>')
    rows = "".join(
        f'<tr><td class="name">{esc(v.implementation)}</td><td>{esc(v.check)}</td>'
        f'<td><div class="msg mono">{esc(v.message or "(no message)")}</div>'
        + (f'<div class="where">{esc(_network(v))}</div>' if _network(v) else "")
        + f'{_reproducer(v) if v.reproducer else ""}</td><td class="mono small">{esc(v.extra.get("test", ""))}</td></tr>'
        for v in errs[:MAX_ERRORS])
    table = ('<div class="wrap"><table class="sortable"><thead><tr><th>implementation</th><th>stage</th>'
             f'<th>message</th><th>test</th></tr></thead><tbody>{rows}</tbody>'
             f'{_cap_row(min(len(errs), MAX_ERRORS), len(errs), 4, "errors")}</table></div>')
    every = (f'<details class="every"><summary>Every error verdict ({len(errs):,}), with its network and reproducer'
             f'</summary>{table}</details>')
    return _section("errors", f"Plug-in errors ({len(errs):,})", grouped + every,
                    "Implementations that could not be checked: they failed to load, raised, hung or returned "
                    "something unusable. Grouped by implementation and message, with a count.")


def _plots(vs, meta) -> str:
    def fig(title, body, caption):
        return f'<figure><h3>{esc(title)}</h3>{body}<figcaption>{esc(caption)}</figcaption></figure>'
    curve = meta.get("step_curve") if isinstance(meta.get("step_curve"), dict) else None
    return _section("plots", "Plots", '<div class="grid">'
        + fig("Relative error per check kind", plots.error_distribution(vs),
              "Each checked verdict’s worst relative error over the entries it decided (not-checkable verdicts have "
              "none and are only counted). Bands: below 1e-7 agreement at float64 level, 1e-7 to 1e-4 "
              "finite-difference level, 1e-4 to 1e-2 float32 level; the bound, not the band, decides a verdict.")
        + fig("Error / bound by layer and activation", plots.layer_heatmap(vs),
              "How near its bound each checked verdict came (error / bound at its worst decided entry), placed at "
              "that entry’s layer and the layer’s activation; the cell shows the nearest. Red only above 1: a "
              "failure.")
        + fig("Central difference: error against step", plots.step_curve(curve),
              "Measured on every parameter of " + (curve.get("network", "a sample network") if curve else "a sample network")
              + " against JAX’s exact gradient: truncation shrinks as h², rounding grows as ε/h; the orange line is "
                "the step the finite-difference checker takes.")
        + fig("Perceptron updates against the Novikoff bound", plots.perceptron_bound(vs),
              "Each run’s number of updates k against (R/γ)²; the theorem puts every point on or under the diagonal.")
        + "</div>")


def _reasons(reasons: Counter, what: str) -> str:
    """A collapsed list of reasons with their counts, most frequent first."""
    if not reasons:
        return ""
    items = "".join(f'<li><span class="count">{n:,}×</span> {esc(m)}</li>'
                    for m, n in reasons.most_common(MAX_REASONS))
    more = (f'<li class="cap">{len(reasons) - MAX_REASONS:,} more reasons in the JSON results</li>'
            if len(reasons) > MAX_REASONS else "")
    return (f'<details class="reasons"><summary>{esc(what)} ({sum(reasons.values()):,}): why</summary>'
            f'<ul>{items}{more}</ul></details>')


def _by_check(vs) -> str:
    """Per implementation and check: verdicts by status, the share of entries decided, and error /
    bound of the checked verdict nearest its bound. Undecided and not-checkable work is counted,
    never given an error."""
    stats = check_stats(vs, key=lambda v: (v.implementation, v.check))
    rows, reasons = [], Counter()
    for (impl, check), st in stats.items():
        c = st.counts
        reasons.update({f"{check}: {m}": n for m, n in st.reasons.items()})
        errs = sorted(st.errors)
        med = errs[len(errs) // 2] if errs else None
        nc_tip = "; ".join(f"{n}× {m}" for m, n in st.reasons.most_common(5))
        rows.append(
            f'<tr title="{esc(st.describe())}"><td class="name">{esc(check)}<div class="impl">{esc(impl)}</div></td>'
            f'{_count(st.n)}'
            f'{_count(c[PASSED])}{_count(st.n_failed, "bad")}{_count(c[ERROR], "bad")}'
            f'<td class="n{" zero" if not c[NOT_CHECKABLE] else ""}" data-v="{c[NOT_CHECKABLE]}" title="{esc(nc_tip)}">'
            f'{c[NOT_CHECKABLE]:,}{f" ({percent(c[NOT_CHECKABLE], st.n)})" if c[NOT_CHECKABLE] else ""}</td>'
            f'{_count(st.entries)}{_td_share(st.decided, st.entries)}{_td_share(st.kinks, st.entries)}'
            f'{_td_share(st.undecided, st.entries)}{_td_num(med, lambda x: sci(x, 1))}'
            f'{_td_nearest(st.nearest, short=True)}</tr>')
    return ('<h3>By check kind</h3><p class="lead">Entries decided: neither a kink nor undecided (a bound of ½ or '
            'more on a relative error, which is at most 1, could never fail). Errors come only from decided '
            'entries of checked verdicts; error / bound is how near the bound the nearest came (at most 1 passes).'
            '</p><div class="wrap"><table class="sortable compact"><thead><tr><th>check</th>'
            '<th class="n">verdicts</th><th class="n">passed</th><th class="n">failed</th><th class="n">errors</th>'
            '<th class="n">not checkable</th><th class="n">entries</th><th class="n">decided</th>'
            '<th class="n">kinks</th><th class="n">undecided</th><th class="n">median error</th>'
            '<th class="n">error / bound</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>' + _reasons(reasons, "Not checkable verdicts"))


def _td_share(n: int, total: int) -> str:
    return f'<td class="n{" zero" if not n else ""}" data-v="{n / total if total else ""}">{percent(n, total)}</td>'


def _activation_loss(vs) -> str:
    """Per dtype, activation and loss: verdicts, failures and error / bound of the verdict nearest
    its bound among the networks using both; grey where nothing was decided."""
    from reference.spec import ACTIVATIONS, DTYPES, LOSSES
    cells: dict[tuple[str, str, str], list] = {}
    for v in vs:
        if undeclared(v):
            continue
        _arch, acts, loss, dtype = spec_fields(v)
        r = nearness(v)
        for a in set(acts):
            c = cells.setdefault((dtype, a, loss), [0, 0, None, Counter()])
            c[0] += 1
            c[1] += v.status in PROBLEMS
            if r is not None and (c[2] is None or not r <= c[2]):
                c[2] = r
            if v.status == NOT_CHECKABLE:
                c[3][v.message or "(no reason given)"] += 1
    if not cells:
        return '<h3>By activation and loss</h3><p class="cap">No verdict in this run describes a network.</p>'

    def order(known):
        return lambda k: (list(known).index(k) if k in known else len(known), k)
    out = []
    for dtype in sorted({d for d, _, _ in cells}, key=order(DTYPES)):
        acts = sorted({a for d, a, _ in cells if d == dtype}, key=order(ACTIVATIONS))
        losses = sorted({l for d, _, l in cells if d == dtype}, key=order(LOSSES))
        body = []
        for a in acts:
            tds = []
            for l in losses:
                c = cells.get((dtype, a, l))
                if c is None:
                    tds.append('<td class="cell zero">–</td>')
                    continue
                n, bad, worst, nc = c
                note = f'<small class="bad">{bad} bad of {n}</small>' if bad else f"<small>{n} verdicts</small>"
                if nc:
                    note += f'<small>{sum(nc.values())} not checkable</small>'
                tip = "; ".join(f"{k}× {m}" for m, k in nc.most_common(3))
                tds.append(f'<td class="cell {_near_class(worst)}" title="{esc(tip)}">'
                           f'{esc("n/c" if worst is None else ratio_text(worst))}{note}</td>')
            body.append(f'<tr><th scope="row">{esc(a)}</th>{"".join(tds)}</tr>')
        head = "".join(f'<th class="c">{esc(l)}</th>' for l in losses)
        out.append(f'<h4>{esc(dtype)} networks</h4><div class="wrap"><table class="grid-table">'
                   f'<thead><tr><th>activation</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')
    over = any(c[2] is not None and c[2] > 1 for c in cells.values())
    return ('<h3>By activation and loss</h3><p class="lead">Error / bound at the worst decided entry, over the '
            'checked verdicts whose network uses that activation (in any layer) and that loss, and how many of '
            'them failed; n/c where none decided anything.</p>' + "".join(out) + _near_legend(over))


def _unchecked(vs) -> str:
    """What the implementation did not declare, once: grouped by message, with a count."""
    groups = unchecked_groups(vs)
    rows = "".join(f'<tr><td>{esc(m)}</td><td>{esc(", ".join(impls))}</td>{_count(n)}</tr>'
                   for m, n, impls in groups[:MAX_REASONS])
    table = ('<div class="wrap"><table class="sortable"><thead><tr><th>left unchecked</th><th>implementation</th>'
             f'<th class="n">tests</th></tr></thead><tbody>{rows}</tbody>'
             f'{_cap_row(min(len(groups), MAX_REASONS), len(groups), 3, "kinds of unchecked work")}</table></div>')
    return _section("unchecked", "Not checked (not declared by the implementation)", table,
                    "Networks, losses and features outside what the implementation declares are not generated, "
                    "so nothing about them passed or failed.")


def _all_verdicts(vs) -> str:
    shown = [v for v in vs if not undeclared(v)]
    rows = []
    for v in sorted(shown, key=severity_key)[:MAX_ROWS]:
        if checked(v):
            r = nearness(v)
            numbers = (f'{_td_num(v.max_error)}{_td_num(v.bound)}'
                       f'<td class="n {_near_class(r)}" data-v="{_sortval(r)}">{esc(ratio_text(r))}</td>'
                       f'<td class="mono">{esc(v.worst if v.worst is not None else "")}</td>')
        else:  # no decided entry: its reason instead of numbers that would mean nothing
            numbers = (f'<td colspan="4" class="why" data-v="">{esc(v.message or "(no reason given)")}</td>')
        rows.append(
            f'<tr><td data-v="{ORDER.index(v.status) if v.status in ORDER else 9}">{_badge(v.status)}</td>'
            f'<td>{esc(v.check)}</td><td class="name">{esc(v.implementation)}</td>'
            f'<td class="net">{esc(_network(v))}</td>{numbers}'
            f'<td class="n{"" if v.n_kinks + v.n_undecided else " zero"}" data-v="{v.n_kinks + v.n_undecided}">'
            f'{v.n_kinks:,} / {v.n_undecided:,}</td>'
            f'{_td_num(v.seconds, lambda s: "–" if num(s) is None else f"{num(s):.3f}")}</tr>')
    table = ('<div class="scroll"><table id="all-verdicts" class="sortable"><thead><tr><th>status</th><th>check</th>'
             '<th>implementation</th><th>network</th><th class="n">max error</th>'
             '<th class="n">bound</th><th class="n">error / bound</th><th>worst entry</th>'
             '<th class="n">kinks / undecided</th><th class="n">time (s)</th></tr></thead>'
             f'<tbody>{"".join(rows)}</tbody>{_cap_row(min(len(shown), MAX_ROWS), len(shown), 10, "verdicts")}'
             '</table></div>')
    skipped = len(vs) - len(shown)
    lead = "Problems first, then by error relative to the bound. Click a heading to sort."
    if skipped:
        lead += f" The {skipped:,} not-declared verdicts are listed once, under “Not checked”."
    every = (f'<details class="every"><summary>Show every verdict ({len(shown):,}): sortable and filterable'
             f'</summary>{table}</details>')
    return _section("verdicts", f"All verdicts ({len(shown):,})", every, lead)


# --- the page --------------------------------------------------------------------------------

def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def render(doc: dict) -> str:
    """The report page for a results document (as written by reports.results)."""
    meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    vs = [Verdict.from_json(record(d)) for d in doc.get("verdicts", [])]
    # None: a file written before diagnoses existed, which cannot say that a failure has none
    diagnoses = [d for d in doc["diagnoses"] if isinstance(d, dict)] if isinstance(doc.get("diagnoses"), list) else None
    diagnosis = _diagnosis(diagnoses, [str(p) for p in doc.get("diagnosis_errors") or []], vs)
    counts = per_implementation(vs)
    n_bad = sum(v.status in (FAILED, REFERENCE_MISMATCH) for v in vs)
    n_err = sum(v.status == ERROR for v in vs)
    # Only our own style and script may run: an injected one would be refused even if escaping failed.
    csp = (f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(JS)}; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    n_undeclared = sum(map(undeclared, vs))
    nav = "".join(f'<a href="#{i}">{esc(t)}</a>' for i, t in (
        (("diagnosis", "What is wrong"),) if diagnosis else ()) + (
        ("summary", "Implementations"), ("run", "Run"), ("failures", f"Failures ({n_bad:,})"),
        ("errors", f"Plug-in errors ({n_err:,})"))
        + ((("unchecked", f"Not checked ({n_undeclared:,})"),) if n_undeclared else ()) + (
        ("plots", "Plots"), ("accuracy", "Accuracy"), ("verdicts", f"All verdicts ({len(vs) - n_undeclared:,})")))
    accuracy = _section("accuracy", "Accuracy", _by_check(vs) + _activation_loss(vs))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,"><title>backcheck accuracy report</title>'
        f'<style>{CSS}</style></head><body><main>'
        + _header(vs, counts) + f'<nav class="toc">{nav}</nav>' + diagnosis
        + _implementations(vs, counts) + _meta(meta) + _problems(vs, 0 if diagnoses else OPEN_PROBLEMS) + _errors(vs)
        + (_unchecked(vs) if n_undeclared else "")
        + _plots(vs, meta) + accuracy + _all_verdicts(vs)
        + f'<footer>Rendered from backcheck results (schema {esc(doc.get("schema", "?"))} '
          f'v{esc(doc.get("schema_version", "?"))}). Self-contained: it loads nothing; the script only adds '
          'sorting, filtering and copy buttons.</footer>'
        + f'</main><script>{JS}</script></body></html>')


def write_html(doc: dict, path) -> str:
    """Render `doc` to `path` (parent folders created); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(doc))
    return path
