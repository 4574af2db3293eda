"""Line charts of stepped metrics as inline SVG, drawn on the server: axes with round
ticks, one polyline per series, and a legend. No script runs in the browser."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito).
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")
MAX_POINTS = 2000  # per series; longer series are thinned evenly, keeping both ends

_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 28, 40
_LEGEND_ROW = 18


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]  # (step, value), sorted by step
    colour: str


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering ``[low, high]``."""
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    digits = max(0, 1 - math.floor(math.log10(step)))
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(index * step, digits) + 0.0 for index in range(first, last + 1)]


def _thin(points: Sequence[tuple[float, float]]) -> Sequence[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = (len(points) - 1) / (MAX_POINTS - 1)
    return [points[round(i * stride)] for i in range(MAX_POINTS)]


def _bounds(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if low == high:
        pad = abs(low) * 0.05 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _label(value: float) -> str:
    return f"{value:.4g}"


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    width: int = 560,
    height: int = 260,
    x_label: str = "step",
    test_id: str = "metric-chart",
) -> Markup:
    """An ``<svg>`` element with one line per series (series without points are left out)."""
    drawn = [s for s in series if s.points]
    legend_rows = len(drawn) if len(drawn) > 1 else 0
    total_height = height + legend_rows * _LEGEND_ROW
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {total_height}" '
        f'width="{width}" height="{total_height}" data-testid="{escape(test_id)}" '
        f'data-metric="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="chart-title" x="{_LEFT}" y="16">{escape(title)}</text>',
    ]
    if not drawn:
        parts.append(f'<text x="{_LEFT}" y="{height / 2}">no values</text></svg>')
        return Markup("".join(parts))
    shown = [(s, _thin(s.points)) for s in drawn]
    xs = [x for _, points in shown for x, _ in points]
    ys = [y for _, points in shown for _, y in points]
    x_low, x_high = (min(xs), max(xs)) if min(xs) != max(xs) else (min(xs) - 1, max(xs) + 1)
    y_low, y_high = _bounds(ys)
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def py(y: float) -> float:
        return _TOP + plot_h - (y - y_low) / (y_high - y_low) * plot_h

    bottom = _TOP + plot_h
    parts.append(
        f'<path class="axis" d="M{_LEFT},{_TOP} V{bottom} H{_LEFT + plot_w}" fill="none" '
        'stroke="#555" stroke-width="1"/>'
    )
    for tick in nice_ticks(y_low, y_high):
        y = py(tick)
        parts.append(
            f'<line x1="{_LEFT - 4}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" '
            'stroke="#ddd" stroke-width="1"/>'
            f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_label(tick)}</text>"
        )
    x_ticks = [t for t in nice_ticks(x_low, x_high) if float(t).is_integer() or x_high - x_low < 5]
    for tick in x_ticks:
        x = px(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#555"/>'
            f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">'
            f"{_label(tick)}</text>"
        )
    parts.append(
        f'<text class="axis-label" x="{_LEFT + plot_w / 2:.1f}" y="{bottom + 32}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    for item, points in shown:
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        parts.append(
            f'<polyline class="series" data-series="{escape(item.label)}" points="{coords}" '
            f'fill="none" stroke="{item.colour}" stroke-width="2"/>'
        )
        if len(points) <= 60:
            parts.extend(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{item.colour}">'
                f"<title>{escape(item.label)} step {_label(x)}: {_label(y)}</title></circle>"
                for x, y in points
            )
    for row, (item, _) in enumerate(shown if legend_rows else []):
        y = height + row * _LEGEND_ROW + 4
        parts.append(
            f'<g class="legend-item" data-testid="chart-legend-item">'
            f'<rect x="{_LEFT}" y="{y}" width="12" height="12" fill="{item.colour}"/>'
            f'<text x="{_LEFT + 18}" y="{y + 11}">{escape(item.label)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
