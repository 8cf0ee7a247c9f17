"""A small inline-SVG drawing kit for the HTML report: scales, axes and a few shapes.

Why our own and not a plotting library: the report must be one self-contained, deterministic
file with no runtime dependency beyond the core ones, and four plots need only rectangles,
lines, circles, text and log/linear axes. Every string that reaches the SVG goes through `esc`,
so names and messages from plug-ins are always text, never markup.
"""
from __future__ import annotations

import html
import math

FONT = 11


def esc(s) -> str:
    return html.escape(str(s), quote=True)


def _f(x: float) -> str:
    """Compact coordinates keep 10,000-point reports small."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


class Scale:
    """Maps data values in [lo, hi] to pixels in [p0, p1], linearly or in log10."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float, log: bool = False):
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi == lo:
            lo, hi = lo - 1, hi + 1
        self.lo, self.hi, self.p0, self.p1, self.log = lo, hi, p0, p1, log

    def __call__(self, v: float) -> float:
        if self.log:
            v = math.log10(v)
        v = min(max(v, self.lo), self.hi)  # clamp: out-of-range values sit on the frame
        return self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def ticks(self, max_ticks: int = 8) -> list[float]:
        if self.log:  # whole decades, thinned to at most max_ticks
            a, b = math.ceil(self.lo - 1e-9), math.floor(self.hi + 1e-9)
            step = max(1, math.ceil((b - a + 1) / max_ticks))
            return [10.0 ** e for e in range(a, b + 1) if (e - a) % step == 0]
        span = self.hi - self.lo
        raw = span / max(1, max_ticks - 1)
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step + 1e-9) + 1)]


def decade(v: float) -> str:
    """Tick label for a power of ten: 1e-7, 1, 100."""
    e = round(math.log10(v))
    return {0: "1", 1: "10", 2: "100", -1: "0.1"}.get(e, f"1e{e}")


def number(v: float) -> str:
    return f"{v:g}"


def rect(x, y, w, h, fill, title=None, cls=None, opacity=None) -> str:
    extra = f' class="{esc(cls)}"' if cls else ""
    extra += f' fill-opacity="{opacity}"' if opacity is not None else ""
    body = f"<title>{esc(title)}</title>" if title else ""
    tag = f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(max(w, 0))}" height="{_f(max(h, 0))}" fill="{fill}"{extra}'
    return f"{tag}>{body}</rect>" if body else tag + "/>"


def line(x1, y1, x2, y2, stroke="#333", width=1.0, dash=None) -> str:
    d = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" '
            f'stroke="{stroke}" stroke-width="{width}"{d}/>')


def polyline(points, stroke="#333", width=1.5, dash=None) -> str:
    d = f' stroke-dasharray="{dash}"' if dash else ""
    pts = " ".join(f"{_f(x)},{_f(y)}" for x, y in points)
    return f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="{width}"{d}/>'


def polygon(points, fill, opacity=1.0) -> str:
    pts = " ".join(f"{_f(x)},{_f(y)}" for x, y in points)
    return f'<polygon points="{pts}" fill="{fill}" fill-opacity="{opacity}"/>'


def circle(x, y, r, fill, title=None, stroke="#fff") -> str:
    body = f"<title>{esc(title)}</title>" if title else ""
    tag = f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{r}" fill="{fill}" stroke="{stroke}" stroke-width="0.8"'
    return f"{tag}>{body}</circle>" if body else tag + "/>"


def text(x, y, s, anchor="start", size=FONT, fill="#333", weight=None, rotate=False, angle=None) -> str:
    """Text at (x, y); rotate=True turns it to read upwards, angle (degrees) tilts it."""
    extra = f' font-weight="{weight}"' if weight else ""
    if rotate or angle:
        extra += f' transform="rotate({-90 if rotate else angle} {_f(x)} {_f(y)})"'
    return (f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{fill}"{extra}>{esc(s)}</text>')


def x_axis(scale: Scale, y: float, label: str, fmt=None, grid_to: float | None = None) -> list[str]:
    """Ticks below y; optional vertical grid lines up to grid_to."""
    fmt = fmt or (decade if scale.log else number)
    out = [line(scale.p0, y, scale.p1, y, "#555")]
    for t in scale.ticks():
        x = scale(t)
        if grid_to is not None:
            out.append(line(x, grid_to, x, y, "#e5e7eb"))
        out += [line(x, y, x, y + 4, "#555"), text(x, y + 15, fmt(t), "middle", 10, "#555")]
    out.append(text((scale.p0 + scale.p1) / 2, y + 31, label, "middle", FONT, "#333"))
    return out


def y_axis(scale: Scale, x: float, label: str, fmt=None, grid_to: float | None = None) -> list[str]:
    fmt = fmt or (decade if scale.log else number)
    out = [line(x, scale.p0, x, scale.p1, "#555")]
    for t in scale.ticks(6):
        y = scale(t)
        if grid_to is not None:
            out.append(line(x, y, grid_to, y, "#e5e7eb"))
        out += [line(x - 4, y, x, y, "#555"), text(x - 7, y + 3.5, fmt(t), "end", 10, "#555")]
    out.append(text(x - 42, (scale.p0 + scale.p1) / 2, label, "middle", FONT, "#333", rotate=True))
    return out


def figure(width: int, height: int, parts: list[str], title: str, desc: str = "") -> str:
    """An inline <svg> (HTML5 needs no xmlns) at its natural size, shrunk by CSS to fit narrow
    containers, with an accessible title and description."""
    d = f"<desc>{esc(desc)}</desc>" if desc else ""
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'class="plot"><title>{esc(title)}</title>{d}' + "".join(parts) + "</svg>")


def mix(stops: list[tuple[float, str]], v: float) -> str:
    """Colour at v, interpolated linearly between (value, '#rrggbb') stops."""
    if v <= stops[0][0]:
        return stops[0][1]
    for (a, ca), (b, cb) in zip(stops, stops[1:]):
        if v <= b:
            t = (v - a) / (b - a)
            rgb = [round(int(ca[i:i + 2], 16) * (1 - t) + int(cb[i:i + 2], 16) * t) for i in (1, 3, 5)]
            return "#" + "".join(f"{c:02x}" for c in rgb)
    return stops[-1][1]
