"""A static SVG of a plotly line figure, for places that can only show an image.

optuna-dashboard 0.21 shows a trial's artifacts as images (``<img>``), not as plotly figures,
and plotly's own static export (kaleido) drives a headless Chrome: seconds of CPU per image,
and a browser on every training machine, while NiftyNet trains next to it. The per-trial
figures (``lr_figure``, ``dice_figure`` in :mod:`lrsearch.monitor.figures`) are simple:
scatter traces as lines and markers on a linear x axis and a linear or log y axis. This module
draws exactly that subset, in microseconds and with the standard library, from the same
``plotly.graph_objects.Figure``; anything else raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["figure_svg"]

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
_DASHES = {"dash": "6 4", "dot": "2 3", "dashdot": "6 3 2 3", "longdash": "10 4"}
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_FONT = "font-family=\"Helvetica, Arial, sans-serif\""


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


class _Axis:
    """Data → pixel along one axis, with tick positions and labels."""

    def __init__(self, values: Sequence[float], log: bool, fixed: Sequence[float] | None,
                 start: float, end: float):
        self.log, self.start, self.end = log, start, end
        if fixed is not None and len(fixed) == 2 and all(_finite(v) for v in fixed):
            low, high = (10 ** v for v in fixed) if log else fixed
        else:
            usable = [v for v in values if _finite(v) and (v > 0 or not log)]
            low, high = (min(usable), max(usable)) if usable else (1.0, 10.0) if log else (0, 1)
            if log:
                low, high = low / 1.5, high * 1.5
            else:
                pad = (high - low) * 0.05 or abs(high) * 0.05 or 0.5
                low, high = low - pad, high + pad
        if high <= low:
            high = low * 10 if log else low + 1
        self.low, self.high = low, high

    def _unit(self, value: float) -> float:
        if self.log:
            return (math.log10(value) - math.log10(self.low)) / \
                (math.log10(self.high) - math.log10(self.low))
        return (value - self.low) / (self.high - self.low)

    def place(self, value: float) -> float | None:
        if not _finite(value) or (self.log and value <= 0):
            return None
        return self.start + (self.end - self.start) * self._unit(value)

    def ticks(self) -> list[tuple[float, str]]:
        if self.log:
            first, last = math.floor(math.log10(self.low)), math.ceil(math.log10(self.high))
            mantissas = (1, 2, 5) if last - first <= 2 else (1,)
            values = [m * 10.0 ** e for e in range(first, last + 1) for m in mantissas]
            return [(v, _power_label(v)) for v in values if self.low <= v <= self.high]
        span = self.high - self.low
        raw = span / 5
        magnitude = 10 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
        first = math.ceil(self.low / step) * step
        count = int((self.high - first) / step + 1e-9) + 1
        return [(first + i * step, _linear_label(first + i * step, step)) for i in range(count)]


def _power_label(value: float) -> str:
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = round(value / 10 ** exponent)
    power = f"10{str(exponent).translate(_SUPERSCRIPT)}"
    return power if mantissa == 1 else f"{mantissa}×{power}"


def _linear_label(value: float, step: float) -> str:
    if abs(value) < step / 1e6:
        return "0"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if abs(step * 10 ** decimals - round(step * 10 ** decimals)) > 1e-9:
        decimals += 1  # 2.5, 0.25
    return f"{value:,.{decimals}f}"


def _text(value: object) -> str:
    return escape("" if value is None else str(value))


def _marker(symbol: str | None, x: float, y: float, size: float, colour: str) -> str:
    r = size / 2
    if symbol in ("x", "cross-thin", "x-thin"):
        return (f"<path d=\"M{x - r:.1f},{y - r:.1f}L{x + r:.1f},{y + r:.1f}"
                f"M{x - r:.1f},{y + r:.1f}L{x + r:.1f},{y - r:.1f}\" stroke=\"{colour}\" "
                "stroke-width=\"2\"/>")
    if symbol == "diamond":
        return (f"<path d=\"M{x:.1f},{y - r:.1f}L{x + r:.1f},{y:.1f}L{x:.1f},{y + r:.1f}"
                f"L{x - r:.1f},{y:.1f}Z\" fill=\"{colour}\"/>")
    return f"<circle cx=\"{x:.1f}\" cy=\"{y:.1f}\" r=\"{r:.1f}\" fill=\"{colour}\"/>"


def figure_svg(fig: go.Figure) -> str:
    """SVG text of a figure made of scatter traces (lines and/or markers)."""
    layout = fig.layout
    width = int(layout.width or 640)
    height = int(layout.height or 360)
    traces = []
    for index, trace in enumerate(fig.data):
        if trace.type != "scatter":
            raise ValueError(f"figure_svg draws scatter traces only, but got {trace.type!r}")
        mode = trace.mode or "lines+markers"
        colour = (trace.line.color if "lines" in mode else None) or trace.marker.color or \
            trace.line.color or _COLOURS[index % len(_COLOURS)]
        traces.append((trace, mode, colour))
    legend = [(t, m, c) for t, m, c in traces if t.name and t.showlegend is not False]
    left, right, top = 72, width - 20, 40
    item = 30 + 6 * max((len(str(t.name)) for t, _, _ in legend), default=0)
    columns = max(1, (right - left) // item)
    rows = -(-len(legend) // columns)
    bottom = height - 48 - 18 * rows
    xs = [v for t, _, _ in traces for v in (t.x or ())]
    ys = [v for t, _, _ in traces for v in (t.y or ())]
    x_axis = _Axis(xs, layout.xaxis.type == "log", layout.xaxis.range, left, right)
    y_axis = _Axis(ys, layout.yaxis.type == "log", layout.yaxis.range, bottom, top)

    out = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" "
           f"viewBox=\"0 0 {width} {height}\" {_FONT} font-size=\"11\">",
           f"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>",
           f"<clipPath id=\"plot\"><rect x=\"{left}\" y=\"{top}\" width=\"{right - left}\" "
           f"height=\"{bottom - top}\"/></clipPath>"]
    for value, label in x_axis.ticks():
        px = x_axis.place(value)
        out.append(f"<line x1=\"{px:.1f}\" y1=\"{top}\" x2=\"{px:.1f}\" y2=\"{bottom}\" "
                   "stroke=\"#ebebeb\"/>")
        out.append(f"<text x=\"{px:.1f}\" y=\"{bottom + 15}\" text-anchor=\"middle\" "
                   f"fill=\"#444\">{_text(label)}</text>")
    for value, label in y_axis.ticks():
        py = y_axis.place(value)
        out.append(f"<line x1=\"{left}\" y1=\"{py:.1f}\" x2=\"{right}\" y2=\"{py:.1f}\" "
                   "stroke=\"#ebebeb\"/>")
        out.append(f"<text x=\"{left - 6}\" y=\"{py + 4:.1f}\" text-anchor=\"end\" "
                   f"fill=\"#444\">{_text(label)}</text>")
    out.append(f"<rect x=\"{left}\" y=\"{top}\" width=\"{right - left}\" "
               f"height=\"{bottom - top}\" fill=\"none\" stroke=\"#888\"/>")

    out.append("<g clip-path=\"url(#plot)\">")
    for trace, mode, colour in traces:
        points = [(x_axis.place(x), y_axis.place(y)) if x is not None and y is not None
                  else (None, None) for x, y in zip(trace.x or (), trace.y or (), strict=False)]
        if "lines" in mode:
            path, pen_down = [], False
            for px, py in points:
                if px is None or py is None:
                    pen_down = False
                    continue
                path.append(f"{'L' if pen_down else 'M'}{px:.1f},{py:.1f}")
                pen_down = True
            dash = _DASHES.get(trace.line.dash or "")
            if path:
                out.append(f"<path d=\"{''.join(path)}\" fill=\"none\" stroke=\"{colour}\" "
                           f"stroke-width=\"{trace.line.width or 2}\""
                           + (f" stroke-dasharray=\"{dash}\"" if dash else "") + "/>")
        if "markers" in mode:
            size = trace.marker.size if _finite(trace.marker.size) else 6
            marker_colour = trace.marker.color if isinstance(trace.marker.color, str) \
                else colour
            out.extend(_marker(trace.marker.symbol, px, py, size, marker_colour)
                       for px, py in points if px is not None and py is not None)
    out.append("</g>")

    for annotation in layout.annotations or ():
        out.append(f"<text x=\"{(left + right) / 2:.1f}\" y=\"{(top + bottom) / 2:.1f}\" "
                   f"text-anchor=\"middle\" fill=\"#666\" font-size=\"13\">"
                   f"{_text(annotation.text)}</text>")
    title = (layout.title.text if layout.title else None) or ""
    fits = int((width - left) / 7.8)  # bold 14 px characters
    title = title if len(title) <= fits else title[:fits - 1] + "…"
    out.append(f"<text x=\"{left}\" y=\"24\" font-size=\"14\" font-weight=\"bold\" "
               f"fill=\"#222\">{_text(title)}</text>")
    out.append(f"<text x=\"{(left + right) / 2:.1f}\" y=\"{bottom + 34}\" text-anchor=\"middle\" "
               f"fill=\"#222\">{_text(layout.xaxis.title.text)}</text>")
    out.append(f"<text transform=\"translate(16,{(top + bottom) / 2:.1f}) rotate(-90)\" "
               f"text-anchor=\"middle\" fill=\"#222\">{_text(layout.yaxis.title.text)}</text>")
    for i, (trace, mode, colour) in enumerate(legend):
        lx = left + (i % columns) * item
        ly = bottom + 52 + (i // columns) * 18
        if "lines" in mode:
            dash = _DASHES.get(trace.line.dash or "")
            out.append(f"<line x1=\"{lx}\" y1=\"{ly - 4}\" x2=\"{lx + 18}\" y2=\"{ly - 4}\" "
                       f"stroke=\"{colour}\" stroke-width=\"2\""
                       + (f" stroke-dasharray=\"{dash}\"" if dash else "") + "/>")
        else:
            symbol_colour = trace.marker.color if isinstance(trace.marker.color, str) \
                else colour
            out.append(_marker(trace.marker.symbol, lx + 9, ly - 4, 8, symbol_colour))
        out.append(f"<text x=\"{lx + 24}\" y=\"{ly}\" fill=\"#222\">{_text(trace.name)}</text>")
    out.append("</svg>")
    return "\n".join(out)
