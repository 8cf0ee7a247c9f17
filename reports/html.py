"""The self-contained HTML accuracy report, rendered from a results document (reports/SCHEMA.md).

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
from collections import Counter, defaultdict

from reference.verdict import ERROR, FAILED, NOT_CHECKABLE, PASSED, REFERENCE_MISMATCH, Verdict
from reports import plots
from reports.aggregate import ORDER, PROBLEMS, excess, impl_verdict, num, per_implementation, severity_key, spec_fields
from reports.assets import CSS, JS
from reports.svg import esc

MAX_PROBLEMS = 30     # failure entries (one line each, the first few unfolded)
OPEN_PROBLEMS = 3
MAX_ERRORS = 100      # plug-in error rows
MAX_ROWS = 500        # rows of the all-verdicts table
LABEL = {PASSED: "passed", FAILED: "failed", ERROR: "error", NOT_CHECKABLE: "not checkable",
         REFERENCE_MISMATCH: "reference mismatch"}
IMPL_ORDER = ("FAILED", "ERRORS", "NOT CHECKED", "PASSED")


# --- formatting ------------------------------------------------------------------------------

def _err(x, digits: int = 2) -> str:
    v = num(x)
    if v is None:
        return "–"
    if not math.isfinite(v):
        return str(v)
    return "0" if v == 0 else f"{v:.{digits}e}"


def _sortval(x) -> str:
    """data-v for numeric sorting; '' sorts first."""
    v = num(x)
    return "" if v is None or math.isnan(v) else repr(v)


def _td_num(x, fmt=_err) -> str:
    return f'<td class="n" data-v="{_sortval(x)}">{esc(fmt(x))}</td>'


def _count(n: int, cls: str = "") -> str:
    c = ' class="n zero"' if not n else (f' class="n {cls}"' if cls else ' class="n"')
    return f'<td{c} data-v="{n}">{n:,}</td>'


def _badge(status: str) -> str:
    return f'<span class="badge s-{esc(status)}">{esc(LABEL.get(status, status))}</span>'


def _impl_badge(word: str) -> str:
    return f'<span class="badge v-{word.replace(" ", "-")}">{esc(word)}</span>'


def _band(x) -> str:
    """CSS class of the accuracy band of an error (the bands of the distribution plot)."""
    v = num(x)
    if v is None:
        return ""
    return "b0" if v < 1e-7 else "b1" if v < 1e-4 else "b2" if v < 1e-2 else "b3"


def _at_worst(v: Verdict):
    """The error at the entry nearest its bound (the one compared with `bound`)."""
    return v.worst_error if num(v.worst_error) is not None else v.max_error


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

def _header(vs, counts_by_impl) -> str:
    words = [impl_verdict(c) for c in counts_by_impl.values()]
    overall = next((w for w in IMPL_ORDER if w in words), "NOT CHECKED")
    total = Counter(v.status for v in vs)
    bits = [f"{total[s]:,} {LABEL[s]}" for s in ORDER if total[s]]
    sub = f"{len(vs):,} verdicts on {len(counts_by_impl)} implementation(s)" + (f": {', '.join(bits)}" if bits else "")
    return (f'<header class="top v-{overall.replace(" ", "-")}"><div><h1>backcheck accuracy report</h1>'
            f'<p class="sub">{esc(sub)}</p></div><div class="overall">{esc(overall)}</div></header>')


def _implementations(vs, counts_by_impl) -> str:
    # per implementation, the verdict nearest (or furthest over) its bound, among those that have
    # one: a not-checkable verdict is the most severe of a passing run but carries no numbers
    nearest: dict[str, Verdict] = {}
    for v in vs:
        if num(v.bound) and num(_at_worst(v)) is not None:
            if v.implementation not in nearest or excess(v) > excess(nearest[v.implementation]):
                nearest[v.implementation] = v
    rows, tot = [], Counter()
    for impl in sorted(counts_by_impl, key=lambda i: (IMPL_ORDER.index(impl_verdict(counts_by_impl[i])), i)):
        c, w = counts_by_impl[impl], nearest.get(impl)
        tot.update(c)
        ratio = "–" if w is None else f"{esc(_err(_at_worst(w), 1))} / {esc(_err(w.bound, 0))}"
        rows.append(
            f'<tr><td class="name">{esc(impl)}</td><td>{_impl_badge(impl_verdict(c))}</td>{_count(c[PASSED])}'
            f'{_count(c[FAILED], "bad")}{_count(c[ERROR], "bad")}{_count(c[NOT_CHECKABLE])}'
            f'{_count(c[REFERENCE_MISMATCH], "bad")}{_count(sum(c.values()))}'
            f'<td class="n" data-v="{_sortval(excess(w) if w else None)}">{ratio}</td></tr>')
    foot = (f'<tfoot><tr><td>total</td><td></td>{_count(tot[PASSED])}{_count(tot[FAILED], "bad")}'
            f'{_count(tot[ERROR], "bad")}{_count(tot[NOT_CHECKABLE])}{_count(tot[REFERENCE_MISMATCH], "bad")}'
            f'{_count(sum(tot.values()))}<td></td></tr></tfoot>') if len(rows) > 1 else ""
    table = ('<div class="wrap"><table class="sortable"><thead><tr><th>implementation</th><th>verdict</th>'
             '<th class="n">passed</th><th class="n">failed</th><th class="n">errors</th><th class="n">not checked</th>'
             '<th class="n">ref. mismatch</th><th class="n">total</th>'
             '<th class="n" title="of the verdict closest to (or furthest over) its bound">error / bound</th>'
             f'</tr></thead><tbody>{"".join(rows)}</tbody>{foot}</table></div>')
    note = ('<p class="note">Not checked: no meaningful bound exists for that input, or the implementation does not '
            'declare it (each verdict says why). Reference mismatch: JAX and finite differences disagree, a harness '
            'problem rather than the plug-in’s (listed under the “reference” implementation).</p>')
    return _section("summary", "Verdict per implementation", table + note)


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


def _problems(vs) -> str:
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
    cards = "".join(_problem_card(v, i < OPEN_PROBLEMS) for i, v in enumerate(shown))
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
    at_worst = _at_worst(v)
    head = [f"{_badge(v.status)} <strong>{esc(v.check)}</strong>", esc(v.implementation)]
    if v.worst is not None:
        head.append(f'<span class="mono">{esc(v.worst)}</span>')
    if num(at_worst) is not None:
        head.append(f'error <span class="mono bad">{esc(_err(at_worst))}</span>'
                    + (f' &gt; bound <span class="mono">{esc(_err(v.bound))}</span>' if num(v.bound) else ""))
    elif v.message:
        head.append(esc(v.message))
    rows = [("network", _network(v))]
    if v.case and v.case != rows[0][1]:
        rows.append(("case", v.case))
    if v.worst is not None:
        rows.append(("worst entry", str(v.worst)))
    if v.worst_values is not None and len(v.worst_values) == 2:
        rows += [("implementation value", _value(v.worst_values[0])), ("reference value", _value(v.worst_values[1]))]
    if num(at_worst) is not None:
        over = excess(v)
        ratio = f" ({over:.3g}× the bound)" if num(v.bound) and math.isfinite(over) else ""
        rows.append(("relative error", f"{_err(at_worst)} against bound {_err(v.bound)}{ratio}"))
    if num(v.max_error) is not None:
        entries = f" over {v.n_entries:,} entries" if v.n_entries else ""
        rows.append(("max / median error", f"{_err(v.max_error)} / {_err(v.median_error)}{entries}"))
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
    rows = "".join(
        f'<tr><td class="name">{esc(v.implementation)}</td><td>{esc(v.check)}</td>'
        f'<td><div class="msg mono">{esc(v.message or "(no message)")}</div>'
        + (f'<div class="where">{esc(_network(v))}</div>' if _network(v) else "")
        + f'{_reproducer(v) if v.reproducer else ""}</td><td class="mono small">{esc(v.extra.get("test", ""))}</td></tr>'
        for v in errs[:MAX_ERRORS])
    table = ('<div class="wrap"><table class="sortable"><thead><tr><th>implementation</th><th>stage</th>'
             f'<th>message</th><th>test</th></tr></thead><tbody>{rows}</tbody>'
             f'{_cap_row(min(len(errs), MAX_ERRORS), len(errs), 4, "errors")}</table></div>')
    return _section("errors", f"Plug-in errors ({len(errs):,})", table,
                    "Implementations that could not be checked: they failed to load, raised, hung or returned "
                    "something unusable.")


def _plots(vs, meta) -> str:
    def fig(title, body, caption):
        return f'<figure><h3>{esc(title)}</h3>{body}<figcaption>{esc(caption)}</figcaption></figure>'
    curve = meta.get("step_curve") if isinstance(meta.get("step_curve"), dict) else None
    n32 = sum(1 for v in vs if spec_fields(v)[3] not in ("", plots.HEATMAP_DTYPE))
    return _section("plots", "Plots", '<div class="grid">'
        + fig("Relative error per check kind", plots.error_distribution(vs),
              "Each verdict’s worst relative error. Bands: below 1e-7 agreement at float64 level, 1e-7 to 1e-4 "
              "finite-difference level, 1e-4 to 1e-2 float32 level or suspicious, above 1e-2 wrong.")
        + fig("Worst error by layer and activation", plots.layer_heatmap(vs),
              "Where each verdict’s worst entry sits: its layer and that layer’s activation (float64 networks"
              + (f"; {n32:,} verdicts in other dtypes left out, their errors are at that dtype’s level" if n32 else "")
              + "). A red outline marks a cell holding a failure.")
        + fig("Central difference: error against step", plots.step_curve(curve),
              "Measured on every parameter of " + (curve.get("network", "a sample network") if curve else "a sample network")
              + " against JAX’s exact gradient: truncation shrinks as h², rounding grows as ε/h; the orange line is "
                "the step the finite-difference checker takes.")
        + fig("Perceptron updates against the Novikoff bound", plots.perceptron_bound(vs),
              "Each run’s number of updates k against (R/γ)²; the theorem puts every point on or under the diagonal.")
        + "</div>")


def _by_check(vs) -> str:
    groups: dict[str, list] = defaultdict(list)
    for v in vs:
        groups[v.check].append(v)
    rows = []
    for check in sorted(groups):
        g = groups[check]
        c = Counter(v.status for v in g)
        errs = sorted(e for e in (num(v.max_error) for v in g) if e is not None)
        med = errs[len(errs) // 2] if errs else None
        rows.append(f'<tr><td class="name">{esc(check)}</td>{_count(len(g))}{_count(c[PASSED])}'
                    f'{_count(c[FAILED] + c[REFERENCE_MISMATCH], "bad")}{_count(c[ERROR], "bad")}'
                    f'{_count(c[NOT_CHECKABLE])}{_td_num(med)}{_td_num(errs[-1] if errs else None)}'
                    f'{_count(sum(v.n_kinks for v in g))}{_count(sum(v.n_undecided for v in g))}</tr>')
    return ('<h3>By check kind</h3><div class="wrap"><table class="sortable"><thead><tr><th>check</th>'
            '<th class="n">verdicts</th><th class="n">passed</th><th class="n">failed</th><th class="n">errors</th>'
            '<th class="n">not checked</th><th class="n">median err.</th><th class="n">worst err.</th>'
            '<th class="n">kinks</th><th class="n">undecided</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _activation_loss(vs) -> str:
    """Per dtype, activation and loss: verdicts, failures and the worst error of networks using both."""
    from reference.spec import ACTIVATIONS, LOSSES
    cells: dict[tuple[str, str, str], list] = {}
    for v in vs:
        _arch, acts, loss, dtype = spec_fields(v)
        for a in set(acts):
            c = cells.setdefault((dtype, a, loss), [0, 0, None])
            c[0] += 1
            c[1] += v.status in PROBLEMS
            e = num(v.max_error)
            if e is not None and (c[2] is None or not e <= c[2]):
                c[2] = e
    if not cells:
        return '<h3>By activation and loss</h3><p class="cap">No verdict in this run describes a network.</p>'

    def order(known):
        return lambda k: (list(known).index(k) if k in known else len(known), k)
    from reference.spec import DTYPES
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
                n, bad, worst = c
                note = f'<small class="bad">{bad} bad of {n}</small>' if bad else f"<small>{n} verdicts</small>"
                tds.append(f'<td class="cell {_band(worst)}">{esc(_err(worst, 1))}{note}</td>')
            body.append(f'<tr><th scope="row">{esc(a)}</th>{"".join(tds)}</tr>')
        head = "".join(f'<th class="c">{esc(l)}</th>' for l in losses)
        out.append(f'<h4>{esc(dtype)} networks</h4><div class="wrap"><table class="grid-table">'
                   f'<thead><tr><th>activation</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')
    legend = "".join(f'<span><i class="sw {c}"></i>{esc(t)}</span>' for c, t in
                     (("b0", "worst < 1e-7"), ("b1", "1e-7 – 1e-4"), ("b2", "1e-4 – 1e-2"), ("b3", "> 1e-2")))
    return ('<h3>By activation and loss</h3><p class="lead">Worst relative error over the verdicts whose network uses '
            'that activation (in any layer) and that loss, and how many of them failed.</p>'
            f'{"".join(out)}<div class="legend">{legend}</div>')


def _all_verdicts(vs) -> str:
    rows = []
    for v in sorted(vs, key=severity_key)[:MAX_ROWS]:
        rows.append(
            f'<tr><td data-v="{ORDER.index(v.status) if v.status in ORDER else 9}">{_badge(v.status)}</td>'
            f'<td>{esc(v.check)}</td><td class="name">{esc(v.implementation)}</td>'
            f'<td class="net">{esc(_network(v))}</td>{_td_num(v.max_error)}{_td_num(v.median_error)}'
            f'{_td_num(v.bound)}<td class="mono">{esc(v.worst if v.worst is not None else "")}</td>'
            f'{_count(v.n_kinks)}{_td_num(v.seconds, lambda s: "–" if num(s) is None else f"{num(s):.3f}")}</tr>')
    table = ('<div class="scroll"><table id="all-verdicts" class="sortable"><thead><tr><th>status</th><th>check</th>'
             '<th>implementation</th><th>network</th><th class="n">max error</th><th class="n">median</th>'
             '<th class="n">bound</th><th>worst entry</th><th class="n">kinks</th><th class="n">time (s)</th></tr>'
             f'</thead><tbody>{"".join(rows)}</tbody>{_cap_row(min(len(vs), MAX_ROWS), len(vs), 10, "verdicts")}'
             '</table></div>')
    return _section("verdicts", f"All verdicts ({len(vs):,})", table,
                    "Problems first, then by error relative to the bound. Click a heading to sort.")


# --- the page --------------------------------------------------------------------------------

def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def render(doc: dict) -> str:
    """The report page for a results document (as written by reports.results)."""
    meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    vs = [Verdict.from_json(d) for d in doc.get("verdicts", [])]
    counts = per_implementation(vs)
    n_bad = sum(v.status in (FAILED, REFERENCE_MISMATCH) for v in vs)
    n_err = sum(v.status == ERROR for v in vs)
    # Only our own style and script may run: an injected one would be refused even if escaping failed.
    csp = (f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(JS)}; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    nav = "".join(f'<a href="#{i}">{esc(t)}</a>' for i, t in (
        ("summary", "Implementations"), ("run", "Run"), ("failures", f"Failures ({n_bad:,})"),
        ("errors", f"Plug-in errors ({n_err:,})"), ("plots", "Plots"), ("accuracy", "Accuracy"),
        ("verdicts", f"All verdicts ({len(vs):,})")))
    accuracy = _section("accuracy", "Accuracy", _by_check(vs) + _activation_loss(vs))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,"><title>backcheck accuracy report</title>'
        f'<style>{CSS}</style></head><body><main>'
        + _header(vs, counts) + f'<nav class="toc">{nav}</nav>'
        + _implementations(vs, counts) + _meta(meta) + _problems(vs) + _errors(vs)
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
