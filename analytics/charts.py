"""Charts drawn on the server as SVG markup: no JavaScript, no CDN, nothing fetched by the browser.

A pure module: numbers and labels in, a string of SVG out (no database, no clock, no randomness).

    daily_chart(dates, [Series("Sent", sent), Series("Opens", opens)], title="Sent and opens per day")
    bar_chart([("Spring sale", 1200), ("Welcome", 300)], title="Sent by campaign")

Every chart is an `<svg role="img">` named by its `<title>` and summarised in its `<desc>`, so a
screen reader announces it as one image with its figures. Series are told apart by colour (a
colour-blind-safe palette) and by dash pattern, with a legend. The value axis has round ticks
(1, 2 or 5 times a power of ten, whole numbers for counts); the date axis labels at most
`MAX_DATE_LABELS` dates in ISO form. Every label is XML-escaped and stripped of characters XML
cannot carry, so a campaign named `<script>` is text. No data gives an empty frame that says so;
one day and a year of days both fit the same width.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.utils.safestring import SafeString, mark_safe

Number = int | float | Decimal

# Okabe & Ito's palette, readable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "4 4", "1 2")
MAX_DATE_LABELS = 8
MAX_MARKED_POINTS = 62  # up to two months of days get a marker (and a tooltip) per point
LABEL_CHARS = 28
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[Number]


def text(value: object) -> str:
    """Text safe inside an SVG element or a quoted attribute."""
    return html.escape(_NOT_XML.sub("", str(value)), quote=True)


def shorten(label: str, limit: int = LABEL_CHARS) -> str:
    label = " ".join(str(label).split())
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def nice_ticks(maximum: Number, *, target: int = 5, integer: bool = True) -> list[float]:
    """Round tick values from 0 to at least `maximum`: steps of 1, 2 or 5 times a power of ten."""
    maximum = float(maximum)
    if not math.isfinite(maximum) or maximum <= 0:
        return [0.0, 1.0]
    raw = maximum / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude * (1 + 1e-9))
    if integer:
        step = max(step, 1.0)
    count = math.ceil(maximum / step - 1e-9)
    decimals = _decimals(step)
    return [float(round(i * step, decimals)) for i in range(count + 1)]


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0


def format_number(value: Number, decimals: int | None = None) -> str:
    """1,234 for counts; two decimals for fractional values unless `decimals` says otherwise."""
    value = float(value)
    if decimals is None:
        decimals = 0 if value == int(value) else 2
    return f"{value:,.{decimals}f}"


def _chart_id(*parts: object) -> str:
    digest = hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()[:10]
    return f"chart-{digest}"


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _date_label_indexes(count: int) -> list[int]:
    """At most MAX_DATE_LABELS evenly spread dates, always the first and the last."""
    if count <= MAX_DATE_LABELS:
        return list(range(count))
    last = count - 1
    return sorted({round(i * last / (MAX_DATE_LABELS - 1)) for i in range(MAX_DATE_LABELS)})


def _frame(chart_id: str, title: str, desc: str, width: int, height: int, body: list[str]) -> SafeString:
    return mark_safe(  # noqa: S308 - every label in `body`, `title` and `desc` went through text()
        f'<svg xmlns="http://www.w3.org/2000/svg" class="analytics-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'style="max-width:100%;height:auto;{FONT}">'
        f'<title id="{chart_id}-title">{text(title)}</title>'
        f'<desc id="{chart_id}-desc">{text(desc)}</desc>' + "".join(body) + "</svg>"
    )


def daily_chart(
    dates: Sequence[date],
    series: Sequence[Series],
    *,
    title: str,
    kind: str = "line",
    width: int = 760,
    height: int = 280,
    value_label: str = "Count",
    date_label: str = "Day",
) -> SafeString:
    """One value per day per series, as lines (with markers up to two months) or grouped bars."""
    if kind not in ("line", "bar"):
        raise ValueError(f"kind must be 'line' or 'bar', not {kind!r}")
    for one in series:
        if len(one.values) != len(dates):
            raise ValueError(f"series {one.name!r} has {len(one.values)} values for {len(dates)} dates")
    chart_id = _chart_id("daily", title, kind, tuple(dates), tuple((s.name, tuple(s.values)) for s in series))
    left, right, top, bottom = 64, 40, 16, 76
    plot_w, plot_h = width - left - right, height - top - bottom
    maximum = max((float(v) for s in series for v in s.values), default=0.0)
    integer = all(float(v) == int(float(v)) for s in series for v in s.values)
    ticks = nice_ticks(maximum, integer=integer)
    top_value = ticks[-1]
    decimals = _decimals(ticks[1] - ticks[0])

    def y_of(value: Number) -> float:
        return top + plot_h * (1 - float(value) / top_value)

    count = len(dates)
    band = plot_w / count if count else plot_w

    def x_of(index: int) -> float:
        return left + band * (index + 0.5)

    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>']
    # Value axis: grid lines at round values.
    body.append('<g class="y-axis" font-size="11" fill="#444" text-anchor="end">')
    for tick in ticks:
        y = _fmt(y_of(tick))
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y}" y2="{y}" stroke="#e3e3e3"/>')
        body.append(f'<text x="{left - 6}" y="{y}" dy="0.32em">{text(format_number(tick, decimals))}</text>')
    body.append("</g>")
    body.append(
        f'<text class="axis-label" transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)" '
        f'font-size="11" fill="#444" text-anchor="middle">{text(value_label)}</text>'
    )
    body.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#888"/>'
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#888"/>'
    )
    # Date axis.
    body.append('<g class="x-axis" font-size="11" fill="#444" text-anchor="middle">')
    for index in _date_label_indexes(count):
        x = _fmt(x_of(index))
        body.append(f'<line x1="{x}" x2="{x}" y1="{top + plot_h}" y2="{top + plot_h + 4}" stroke="#888"/>')
        body.append(f'<text x="{x}" y="{top + plot_h + 17}">{text(dates[index].isoformat())}</text>')
    body.append("</g>")
    body.append(
        f'<text class="axis-label" x="{left + plot_w / 2:.0f}" y="{top + plot_h + 34}" font-size="11" '
        f'fill="#444" text-anchor="middle">{text(date_label)}</text>'
    )

    if not count or maximum <= 0:
        body.append(
            f'<text class="empty" x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}" font-size="13" '
            f'fill="#666" text-anchor="middle">No data for this period</text>'
        )
    if count:
        body.extend(_daily_series(series, dates, kind, x_of, y_of, band, top + plot_h))
    body.extend(_legend([s.name for s in series], left, height - 14, kind))

    first, last = (dates[0].isoformat(), dates[-1].isoformat()) if count else ("", "")
    if count:
        totals = ", ".join(f"{s.name} {format_number(sum(float(v) for v in s.values))}" for s in series)
        span = f"{first} to {last}" if count > 1 else first
        desc = f"{span}, {count} day{'s' if count != 1 else ''}. Totals: {totals}."
    else:
        desc = "No data for this period."
    return _frame(chart_id, title, desc, width, height, body)


def _daily_series(series, dates, kind, x_of, y_of, band, baseline) -> list[str]:
    body: list[str] = []
    if kind == "bar":
        group = min(band * 0.8, 32 * len(series))
        bar = group / max(len(series), 1)
        for number, one in enumerate(series):
            colour = PALETTE[number % len(PALETTE)]
            body.append(f'<g class="series" fill="{colour}"><title>{text(one.name)}</title>')
            for index, value in enumerate(one.values):
                y = y_of(value)
                x = x_of(index) - group / 2 + number * bar
                body.append(
                    f'<rect x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(max(bar, 0.5))}" height="{_fmt(baseline - y)}">'
                    f"<title>{text(dates[index].isoformat())}: {text(format_number(value))} {text(one.name)}</title>"
                    "</rect>"
                )
            body.append("</g>")
        return body
    marked = len(dates) <= MAX_MARKED_POINTS
    for number, one in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        dash = DASHES[number % len(DASHES)]
        points = " ".join(f"{_fmt(x_of(i))},{_fmt(y_of(v))}" for i, v in enumerate(one.values))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        body.append(f'<g class="series"><title>{text(one.name)}</title>')
        body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>')
        if marked:
            for index, value in enumerate(one.values):
                body.append(
                    f'<circle cx="{_fmt(x_of(index))}" cy="{_fmt(y_of(value))}" r="3" fill="{colour}">'
                    f"<title>{text(dates[index].isoformat())}: {text(format_number(value))} {text(one.name)}</title>"
                    "</circle>"
                )
        body.append("</g>")
    return body


def _legend(names: Sequence[str], x: int, y: int, kind: str) -> list[str]:
    body = ['<g class="legend" font-size="12" fill="#222">']
    for number, name in enumerate(names):
        colour = PALETTE[number % len(PALETTE)]
        dash = DASHES[number % len(DASHES)]
        if kind == "bar":
            swatch = f'<rect x="{x}" y="{y - 5}" width="18" height="10" fill="{colour}"/>'
        else:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            swatch = f'<line x1="{x}" x2="{x + 18}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="3"{dash_attr}/>'
        body.append(f'<g>{swatch}<text x="{x + 24}" y="{y}" dy="0.35em">{text(shorten(name, 20))}</text></g>')
        x += 34 + 7 * min(len(name), 20)
    body.append("</g>")
    return body


def bar_chart(
    items: Sequence[tuple[str, Number]],
    *,
    title: str,
    value_label: str = "Count",
    width: int = 760,
    bar_height: int = 22,
) -> SafeString:
    """Horizontal bars, one per labelled value (campaigns by sent, agents by callbacks handled)."""
    chart_id = _chart_id("bar", title, tuple((str(label), str(value)) for label, value in items))
    left, right, top, bottom = 200, 64, 12, 46
    plot_w = width - left - right
    plot_h = max(len(items), 1) * bar_height
    height = top + plot_h + bottom
    maximum = max((float(value) for _, value in items), default=0.0)
    integer = all(float(value) == int(float(value)) for _, value in items)
    ticks = nice_ticks(maximum, integer=integer)
    top_value = ticks[-1]
    decimals = _decimals(ticks[1] - ticks[0])

    def x_of(value: Number) -> float:
        return left + plot_w * float(value) / top_value

    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>']
    body.append('<g class="x-axis" font-size="11" fill="#444" text-anchor="middle">')
    for tick in ticks:
        x = _fmt(x_of(tick))
        body.append(f'<line x1="{x}" x2="{x}" y1="{top}" y2="{top + plot_h}" stroke="#e3e3e3"/>')
        body.append(f'<text x="{x}" y="{top + plot_h + 16}">{text(format_number(tick, decimals))}</text>')
    body.append("</g>")
    body.append(
        f'<text class="axis-label" x="{left + plot_w / 2:.0f}" y="{height - 8}" font-size="11" fill="#444" '
        f'text-anchor="middle">{text(value_label)}</text>'
    )
    body.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#888"/>')
    if not items or maximum <= 0:
        body.append(
            f'<text class="empty" x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}" dy="0.35em" '
            f'font-size="13" fill="#666" text-anchor="middle">No data for this period</text>'
        )
    body.append(f'<g class="bars" fill="{PALETTE[0]}">')
    for index, (label, value) in enumerate(items):
        y = top + index * bar_height
        full = f"{label}: {format_number(value)}"
        body.append(
            f'<g><title>{text(full)}</title><text x="{left - 8}" y="{_fmt(y + bar_height / 2)}" dy="0.35em" '
            f'font-size="12" fill="#222" text-anchor="end">{text(shorten(label))}</text>'
            f'<rect x="{left}" y="{_fmt(y + 3)}" width="{_fmt(x_of(value) - left)}" height="{bar_height - 6}"/>'
            f'<text x="{_fmt(x_of(value) + 4)}" y="{_fmt(y + bar_height / 2)}" dy="0.35em" font-size="11" '
            f'fill="#222">{text(format_number(value))}</text></g>'
        )
    body.append("</g>")
    if items:
        desc = "; ".join(f"{label}: {format_number(value)}" for label, value in items) + "."
    else:
        desc = "No data for this period."
    return _frame(chart_id, title, desc, width, height, body)
