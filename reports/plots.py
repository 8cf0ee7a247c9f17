"""The report's four plots, as inline SVG strings (drawn with reports.svg).

Each takes verdicts (or the run's meta) and returns one <svg>; with nothing to show it returns a
short note instead, so a perceptron-only or gradient-only run still gets a readable report.
"""
from __future__ import annotations

import math
from collections import defaultdict

from reference.verdict import Verdict
from reports import svg
from reports.aggregate import PROBLEMS, at_worst, checked, nearness, num, ratio_text, sci

OK_COLOUR, BAD_COLOUR, NC_COLOUR = "#2f7d4f", "#c62828", "#9aa3ad"
# The accuracy bands of the issue: agreement at float64 level, FD level, float32 level, above.
# Neutral tints: a raw error is good or bad only against its own bound, which the bars' colour says.
BANDS = [(-18.0, -7.0, "#eef2f6", "< 1e-7"), (-7.0, -4.0, "#e2e8ef", "1e-7 – 1e-4"),
         (-4.0, -2.0, "#eef2f6", "1e-4 – 1e-2"), (-2.0, 1.0, "#e2e8ef", "> 1e-2")]
LO, HI, BIN = -17.0, 1.0, 0.5   # log10 relative-error axis of the distribution plot
# error / bound, log10: green far below the bound, amber near it; red is kept for "over" (> 1).
HEAT = [(-8, "#eef6f0"), (-5, "#b9dfc3"), (-3, "#8cc7a0"), (-1, "#f2e394"), (0, "#f2a65a")]
HEAT_LO = -8


def note(message: str) -> str:
    return f'<p class="plot-note">{svg.esc(message)}</p>'


def _log_error(v: Verdict) -> float | None:
    """log10 of a verdict's worst relative error, clamped into the axis (0 -> left edge,
    inf / nan -> right edge), or None when the verdict has no error to show."""
    e = num(v.max_error)
    if e is None:
        return None
    if math.isnan(e) or e == math.inf:
        return HI
    return LO if e <= 10 ** LO else min(math.log10(e), HI)


def error_distribution(vs: list[Verdict]) -> str:
    """Per check kind, a histogram of log10(worst relative error) on the accuracy bands;
    problem verdicts stacked in red on top of the others."""
    rows: dict[str, list] = defaultdict(lambda: [[0, 0] for _ in range(int((HI - LO) / BIN) + 1)])
    unplotted: dict[str, int] = defaultdict(int)   # not checkable: no decided entry, so no error
    for v in vs:
        le = _log_error(v) if checked(v) else None
        if le is not None:
            rows[v.check][int((le - LO) / BIN)][v.status in PROBLEMS] += 1
        elif not checked(v) and v.status not in PROBLEMS:
            unplotted[v.check] += 1
    if not rows:
        return note("No verdict in this run has a decided relative error to plot.")
    kinds = sorted(rows)
    left, right, top, row_h = 150, 600, 34, 46
    height = top + row_h * len(kinds) + 52
    x = svg.Scale(LO, HI + BIN, left, right)
    parts = []
    bottom = top + row_h * len(kinds)
    for lo, hi, colour, label in BANDS:
        parts.append(svg.rect(x(max(lo, LO)), top, x(min(hi, HI + BIN)) - x(max(lo, LO)), bottom - top, colour))
    for edge in (-7, -4, -2):
        parts += [svg.line(x(edge), top - 4, x(edge), bottom, "#8a94a3", 1, "3 3"),
                  svg.text(x(edge), top - 8, f"1e{edge}", "middle", 10, "#5f6b7a")]
    bw = x(LO + BIN) - x(LO)
    for r, kind in enumerate(kinds):
        y0 = top + row_h * (r + 1) - 4
        counts = rows[kind]
        peak = max(a + b for a, b in counts)
        n, bad = sum(a for a, _ in counts), sum(b for _, b in counts)
        parts.append(svg.line(left, y0, right, y0, "#c9ced6"))
        parts.append(svg.text(left - 8, y0 - 14, kind, "end", 11.5, "#1f2933", weight="600"))
        parts.append(svg.text(left - 8, y0 - 2, f"{n + bad} verdicts" + (f", {bad} bad" if bad else ""),
                              "end", 9.5, BAD_COLOUR if bad else "#5f6b7a"))
        if unplotted[kind]:
            parts.append(svg.text(left - 8, y0 + 9, f"+{unplotted[kind]} not checkable", "end", 9, NC_COLOUR))
        for i, (ok, no) in enumerate(counts):
            if not ok + no:
                continue
            lo_edge = LO + i * BIN
            h_ok, h_bad = (row_h - 10) * ok / peak, (row_h - 10) * no / peak
            where = "≤ 1e-17 (or exactly 0)" if i == 0 else ("≥ 10, inf or nan" if lo_edge >= HI else
                                                             f"1e{lo_edge:g} – 1e{lo_edge + BIN:g}")
            tip = f"{kind}: {ok + no} verdicts with worst error {where}" + (f" ({no} failed/errors)" if no else "")
            parts.append(svg.rect(x(lo_edge) + 0.5, y0 - h_ok, bw - 1, h_ok, OK_COLOUR, tip))
            if no:
                parts.append(svg.rect(x(lo_edge) + 0.5, y0 - h_ok - h_bad, bw - 1, h_bad, BAD_COLOUR, tip))
    ticks = list(range(int(LO), int(HI) + 1, 2))
    for t in ticks:
        parts += [svg.line(x(t), bottom, x(t), bottom + 4, "#555"),
                  svg.text(x(t), bottom + 15, "0" if t == LO else svg.decade(10.0 ** t), "middle", 10, "#555")]
    parts.append(svg.text((left + right) / 2, bottom + 32, "worst relative error of each verdict (log scale)",
                          "middle", 11))
    parts += [svg.rect(left, height - 14, 10, 10, OK_COLOUR), svg.text(left + 14, height - 5, "passed", size=10)]
    if any(b for counts in rows.values() for _, b in counts):  # the red key only where something is red
        parts += [svg.rect(left + 80, height - 14, 10, 10, BAD_COLOUR),
                  svg.text(left + 94, height - 5, "failed / reference mismatch", size=10)]
    return svg.figure(620, height, parts, "Distribution of relative errors per check kind",
                      "Histograms of log10 worst relative error, one row per check kind, over bands "
                      "below 1e-7, 1e-7 to 1e-4, 1e-4 to 1e-2 and above 1e-2.")


def layer_heatmap(vs: list[Verdict], max_layers: int = 8) -> str:
    """Error / bound of the checked verdicts by (layer of the worst entry, that layer's activation):
    how near its bound the nearest came, the same scale for every check and dtype."""
    cells: dict[tuple[int, str], list] = {}
    for v in vs:
        r, w = nearness(v), v.worst
        layers = v.spec.get("layers") if isinstance(v.spec, dict) else None
        if r is None or w is None or not isinstance(layers, list) or not 1 <= w.layer <= len(layers):
            continue
        layer = layers[w.layer - 1]
        act = str(layer.get("activation", "?")) if isinstance(layer, dict) else "?"
        c = cells.setdefault((min(w.layer, max_layers), act), [0.0, 0, 0, None])
        if not r <= c[0]:  # nan counts as over
            c[0], c[3] = r, v
        c[1] += 1
        c[2] += v.status in PROBLEMS
    if not cells:
        return note("No checked verdict names a worst entry inside a network layer.")
    from reference.spec import ACTIVATIONS
    acts = sorted({a for _, a in cells}, key=lambda a: (list(ACTIVATIONS).index(a) if a in ACTIVATIONS else 99, a))
    depth = max(l for l, _ in cells)
    # room above for the tilted activation names, the longest included (generalized_relu)
    cw, ch, left, top = min(64, 520 // len(acts)), 34, 70, max(60, 26 + 5 * max(map(len, acts)))
    width, height = max(left + cw * len(acts) + 70, 360), top + ch * depth + 48
    parts = [svg.text(left + cw * i + cw / 2 + 3, top - 8, a, "start", 12, "#1f2933", weight="600", angle=-40)
             for i, a in enumerate(acts)]
    for j in range(1, depth + 1):
        y = top + ch * (j - 1)
        label = f"layer {j}" + ("+" if j == max_layers else "")
        parts.append(svg.text(left - 8, y + ch / 2 + 4, label, "end", 12))
        for i, a in enumerate(acts):
            c = cells.get((j, a))
            xx = left + cw * i
            if c is None:
                parts.append(svg.rect(xx + 1, y + 1, cw - 2, ch - 2, "#f3f4f6", f"layer {j}, {a}: no checked verdict"))
                continue
            r, n, bad, v = c
            over = not r <= 1
            fill = BAD_COLOUR if over else svg.mix(HEAT, HEAT_LO if r <= 10 ** HEAT_LO else math.log10(r))
            label = ratio_text(r)
            tip = (f"layer {j}, {a}: error / bound {label} over {n} verdicts (nearest: {v.check}, relative error "
                   f"{sci(at_worst(v), 1)} against bound {sci(v.bound, 1)})" + (f", {bad} failed" if bad else ""))
            parts.append(svg.rect(xx + 1, y + 1, cw - 2, ch - 2, fill, tip))
            parts.append(svg.text(xx + cw / 2, y + ch / 2 + 4, label, "middle", 11.5, "#fff" if over else "#1f2933"))
    # colour key: error / bound from 1e-8 to 1, and the red of "over" only when a cell is over
    ky = top + ch * depth + 18
    for k, t in enumerate(range(HEAT_LO, 1)):
        parts.append(svg.rect(left + k * 30, ky, 30, 9, svg.mix(HEAT, t)))
        if t % 2 == 0:
            parts.append(svg.text(left + k * 30 + 15, ky + 21, svg.decade(10.0 ** t), "middle", 9.5, "#5f6b7a"))
    kx = left + 30 * (1 - HEAT_LO) + 8
    parts.append(svg.text(kx, ky + 8, "error / bound", size=9.5, fill="#5f6b7a"))
    if any(not c[0] <= 1 for c in cells.values()):
        parts += [svg.rect(kx + 70, ky, 14, 9, BAD_COLOUR), svg.text(kx + 88, ky + 8, "> 1 failed", size=9.5, fill=BAD_COLOUR)]
    return svg.figure(width, height, parts, "Error / bound per layer and activation",
                      "Heatmap: rows are layers (of the worst entry), columns activations; colour is how near its "
                      "bound the nearest checked verdict came, red only over the bound.")


def step_curve(curve: dict | None) -> str:
    """Central-difference error against its step: truncation (h^2) right, rounding (1/h) left."""
    if not curve:
        return note("No step-size curve in this results file (the run was made with --backcheck-no-step-curve).")
    if curve.get("error"):
        return note(f"The step-size curve could not be computed: {curve['error']}")
    pts = [(num(h), num(m), num(w)) for h, m, w in curve.get("points", [])]
    pts = sorted(p for p in pts if None not in p and min(p) > 0 and max(p) < math.inf)
    if len(pts) < 2:
        return note("The step-size curve has too few points to draw.")
    left, right, top, bottom = 70, 590, 16, 296
    hs = [p[0] for p in pts]
    ys = [p[1] for p in pts] + [p[2] for p in pts]
    x = svg.Scale(min(hs), max(hs), left, right, log=True)
    y = svg.Scale(10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys))), bottom, top, log=True)
    parts = svg.x_axis(x, bottom, "step h, relative to max(|θ|, 1)", grid_to=top)
    parts += svg.y_axis(y, left, "relative error of the central difference", grid_to=right)
    parts.append(svg.polyline([(x(h), y(w)) for h, _, w in pts], "#9db4cf", 1.5, "5 3"))
    parts.append(svg.polyline([(x(h), y(m)) for h, m, _ in pts], "#1f5fa8", 2.2))
    parts += [svg.circle(x(h), y(m), 2.6, "#1f5fa8", f"h = {h:.1e}: median {m:.2e}, worst {w:.2e}")
              for h, m, w in pts]
    chosen = num(curve.get("chosen_step"))
    if chosen:
        cx = x(chosen)
        parts += [svg.line(cx, top, cx, bottom, "#e07b00", 2),
                  svg.text(cx + 6, bottom - 8, f"checker's step {chosen:.1e}", size=10.5, fill="#b45f00", weight="600")]
    # the two arms, labelled inside the V's mouth, above the curve
    mid = (x(hs[0]) + x(hs[-1])) / 2
    parts += [svg.text(mid - 60, top + 16, "← rounding ∝ ε/h", "end", 11, "#5f6b7a"),
              svg.text(mid + 60, top + 16, "truncation ∝ h² →", "start", 11, "#5f6b7a")]
    parts += [svg.line(left + 12, bottom - 36, left + 34, bottom - 36, "#1f5fa8", 2.2),
              svg.text(left + 40, bottom - 32, "median over entries", size=10.5),
              svg.line(left + 12, bottom - 20, left + 34, bottom - 20, "#9db4cf", 1.5, "5 3"),
              svg.text(left + 40, bottom - 16, "worst entry", size=10.5)]
    return svg.figure(610, bottom + 42, parts, "Central-difference error against step size",
                      f"V-shaped curve for {curve.get('network', 'a sample network')}: error falls as h squared, "
                      f"then rises as rounding takes over; the step the checker uses is marked.")


def perceptron_bound(vs: list[Verdict]) -> str:
    """Perceptron updates k against the Novikoff bound (R/γ)²: every point must be under y = x."""
    pts = []
    for v in vs:
        k, b = num(v.extra.get("k")), num(v.extra.get("bound"))
        if v.check.startswith("perceptron") and k is not None and b is not None and b > 0 and math.isfinite(b) \
                and math.isfinite(k):
            pts.append((b, max(k, 0.0), v))
    if not pts:
        return note("No perceptron verdict with an update count and a Novikoff bound in this run.")
    lo = 10 ** math.floor(math.log10(max(0.5, min(min(p[0] for p in pts), min(p[1] or 1 for p in pts)))))
    hi = 10 ** math.ceil(math.log10(max(max(p[0] for p in pts), max(p[1] for p in pts), 1.0) * 1.01))
    left, right, top, bottom = 70, 350, 16, 296
    x = svg.Scale(lo, hi, left, right, log=True)
    y = svg.Scale(lo, hi, bottom, top, log=True)
    over = sum(1 for b, k, _ in pts if k > b)
    failed = any(v.status in PROBLEMS for _, _, v in pts)
    alarm = BAD_COLOUR if over or failed else "#5f6b7a"  # red only when a point is red
    parts = [svg.polygon([(left, bottom), (left, top), (right, top)], alarm, 0.07)]
    parts += svg.x_axis(x, bottom, "Novikoff bound (R/γ)²", grid_to=top)
    parts += svg.y_axis(y, left, "updates k", grid_to=right)
    parts += [svg.line(left, bottom, right, top, "#555", 1.2, "4 3"),
              svg.text(x(hi) - 6, y(hi) + 26, "k = bound", "end", 10.5, "#555"),
              svg.text(left + 8, top + 16, "above: bound violated", size=10.5, fill=alarm)]
    for b, k, v in sorted(pts, key=lambda p: p[2].status in PROBLEMS):  # failures drawn last, on top
        bad = v.status in PROBLEMS
        tip = f"{v.check} {v.implementation}: {v.case}: k = {k:g}, bound = {b:.4g} [{v.status}]"
        parts.append(svg.circle(x(b), y(max(k, lo)), 4.5 if bad else 3.5, BAD_COLOUR if bad else OK_COLOUR, tip))
    # a small key and the numbers a reader would otherwise have to count
    ratios = [k / b for b, k, _ in pts]
    zero = sum(1 for _, k, _ in pts if k < lo)
    lines = [(f"{len(pts):,} perceptron runs", "#1f2933", "600"), (f"largest k / bound: {max(ratios):.2f}", "#1f2933", None),
             (f"{over} above the bound", BAD_COLOUR if over else "#1f2933", "600" if over else None)]
    if zero:
        lines.append((f"{zero} with k = 0 (on the axis)", "#5f6b7a", None))
    tx = right + 28
    for i, (t, colour, weight) in enumerate(lines):
        parts.append(svg.text(tx, top + 40 + 20 * i, t, size=11.5, fill=colour, weight=weight))
    ky = top + 50 + 20 * len(lines)
    parts += [svg.circle(tx + 5, ky, 3.5, OK_COLOUR), svg.text(tx + 14, ky + 4, "within the bound", size=10.5)]
    if failed:
        parts += [svg.circle(tx + 5, ky + 18, 4.5, BAD_COLOUR), svg.text(tx + 14, ky + 22, "failed", size=10.5)]
    return svg.figure(610, bottom + 42, parts, "Perceptron updates against the Novikoff bound",
                      "Scatter of update count k against (R/gamma)^2 on log axes; points must lie under the diagonal.")
