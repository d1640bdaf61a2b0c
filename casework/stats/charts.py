"""Charts of the statistics pages, drawn on the server as SVG: no script, no external service, nothing to download.

The SVG is placed in the page itself. The Content-Security-Policy allows no inline style, so every colour, size
and font is a presentation attribute (``fill``, ``font-size``), never a ``style`` attribute or element. Every text
is escaped. A value that disclosure control hid ("<5", "×") is drawn as a gap with its mark, never as a bar or a
point whose size would give the number away; a value with no data ("—") is drawn the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 720
FONT = "Noto Sans, Segoe UI, Roboto, Arial, sans-serif"
BAR = "#2a6cb0"
GAP = "#9aa3af"
TEXT = "#1d2430"
MUTED = "#5b6573"
GRID = "#e3e6ea"
LINE = "#0f3d66"
#: Labels longer than this are cut (with "…"); the whole label stays in the bar's tooltip (``<title>``).
MAX_LABEL = 90


@dataclass(frozen=True)
class Item:
    """One bar or one point: its label, its published value (a number, a mark such as "<5" or "×", or None for no
    data), and optionally where a click on its label leads (the drill-down)."""

    label: str
    value: object
    href: str | None = None


def is_number(value: object) -> bool:
    # A tuple, not ``int | float``: isinstance() with a union is several times slower, and a dashboard asks 5,000 times.
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # noqa: UP038


def shown(value: object, fmt=None) -> str:
    """The text of a published value: the number formatted, a mark as it is, "—" for no data."""
    if value is None:
        return "—"
    if is_number(value):
        return fmt(value) if fmt else str(value)
    return str(value)


def _attrs(**attrs) -> str:
    parts = []
    for name, value in attrs.items():
        if value is None:
            continue
        parts.append(f'{name.rstrip("_").replace("_", "-")}="{escape(value)}"')
    return " ".join(parts)


def _text(x: float, y: float, content: str, *, size: int = 13, fill: str = TEXT, anchor: str = "start", **extra) -> str:
    attrs = _attrs(x=f"{x:.1f}", y=f"{y:.1f}", font_size=size, fill=fill, text_anchor=anchor, **extra)
    return f"<text {attrs}>{escape(content)}</text>"


def _cut(label: str, limit: int = MAX_LABEL) -> str:
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def _open(chart_id: str, height: float, title: str, description: str, css_class: str) -> list[str]:
    attrs = _attrs(
        id=chart_id,
        viewBox=f"0 0 {WIDTH} {height:.0f}",
        width=WIDTH,
        height=f"{height:.0f}",
        role="img",
        class_=css_class,
        font_family=FONT,
        aria_labelledby=f"{chart_id}-title {chart_id}-desc",
    )
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" {attrs}>',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
    ]


def bar_chart(
    items: Sequence[Item],
    *,
    chart_id: str,
    title: str,
    description: str = "",
    fmt=None,
    empty: str = "",
    label_width: int | None = None,
) -> Markup:
    """Horizontal bars, one per item: each under its label (Vietnamese labels of groups are long), or, with
    ``label_width``, beside a short label (communes), so that a hundred communes still fit on a screen or two.

    :param fmt: formats a number for display (default ``str``).
    :param empty: the text drawn when there is no item at all.
    :param label_width: room for the labels on the left, in SVG units; labels that do not fit are cut.
    """
    beside = label_width is not None
    row = 22 if beside else 40
    top = 8
    height = top + row * max(len(items), 1) + 8
    left, right = 8, 96  # room on the right for the value
    start = left + (label_width or 0)
    span = WIDTH - start - right
    bar_y, text_y, label_y = (4, 16, 16) if beside else (18, 30, 13)
    fits = max(8, int((label_width or 0) / 6.5)) if beside else MAX_LABEL
    numbers = [float(i.value) for i in items if is_number(i.value)]
    largest = max(numbers, default=0.0)
    out = _open(chart_id, height, title, description, "chart chart-bars")
    if not items:
        out.append(_text(left, top + 24, empty or "—", fill=MUTED))
    for n, item in enumerate(items):
        y = top + n * row
        label = _cut(item.label, fits)
        tip = f"{item.label}: {shown(item.value, fmt)}"
        out.append(f'<g class="bar" {_attrs(data_value=shown(item.value, fmt))}><title>{escape(tip)}</title>')
        if item.href:
            out.append(f"<a {_attrs(href=item.href)}>{_text(left, y + label_y, label, size=12, fill=BAR)}</a>")
        else:
            out.append(_text(left, y + label_y, label, size=12))
        if is_number(item.value):
            length = 0.0 if largest <= 0 else span * float(item.value) / largest
            if length > 0:
                rect = _attrs(x=start, y=y + bar_y, width=f"{max(length, 1.5):.1f}", height=14, fill=BAR)
                out.append(f"<rect {rect}/>")
            out.append(_text(start + length + 6, y + text_y, shown(item.value, fmt), size=12))
        else:
            # A gap: an empty dashed outline of no particular length, and the mark instead of a number.
            frame = _attrs(
                x=start, y=y + bar_y, width=28, height=14, fill="none", stroke=GAP, stroke_dasharray="3 2", class_="gap"
            )
            out.append(f"<rect {frame}/>")
            out.append(_text(start + 34, y + text_y, shown(item.value, fmt), size=12, fill=MUTED, class_="mark"))
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text and attribute above is escaped


def line_chart(
    points: Sequence[Item],
    *,
    chart_id: str,
    title: str,
    description: str = "",
    fmt=None,
) -> Markup:
    """A line over the points (months), broken where a value is hidden: there the mark is written on the axis."""
    height = 260
    left, right, top, bottom = 48, 16, 16, 44
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    numbers = [float(p.value) for p in points if is_number(p.value)]
    largest = max(numbers, default=0.0)
    scale_top = _nice(largest)
    out = _open(chart_id, height, title, description, "chart chart-line")
    # Horizontal grid lines with their values.
    for step in range(5):
        value = scale_top * step / 4
        y = top + plot_h - plot_h * step / 4
        out.append(f"<line {_attrs(x1=left, x2=WIDTH - right, y1=f'{y:.1f}', y2=f'{y:.1f}', stroke=GRID)}/>")
        out.append(_text(left - 6, y + 4, shown(_round(value), fmt), size=11, fill=MUTED, anchor="end"))
    count = len(points)

    def x_of(index: int) -> float:
        return left + (plot_w / 2 if count == 1 else plot_w * index / (count - 1))

    def y_of(value: float) -> float:
        return top + plot_h - (0 if scale_top <= 0 else plot_h * value / scale_top)

    # The line, in runs of consecutive published numbers.
    run: list[str] = []
    runs: list[list[str]] = []
    for index, point in enumerate(points):
        if is_number(point.value):
            run.append(f"{x_of(index):.1f},{y_of(float(point.value)):.1f}")
        elif run:
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    for segment in runs:
        if len(segment) > 1:
            out.append(f"<polyline {_attrs(points=' '.join(segment), fill='none', stroke=LINE, stroke_width=2)}/>")
    every = max(1, -(-count // 12))  # at most about 12 labels on the axis
    for index, point in enumerate(points):
        x = x_of(index)
        tip = f"{point.label}: {shown(point.value, fmt)}"
        out.append(f'<g class="point" {_attrs(data_value=shown(point.value, fmt))}><title>{escape(tip)}</title>')
        if is_number(point.value):
            y = y_of(float(point.value))
            out.append(f"<circle {_attrs(cx=f'{x:.1f}', cy=f'{y:.1f}', r=3.5, fill=LINE)}/>")
        else:
            out.append(_text(x, top + plot_h - 6, shown(point.value, fmt), size=11, fill=MUTED, anchor="middle"))
        out.append("</g>")
        if index % every == 0:
            out.append(_text(x, height - bottom + 18, point.label, size=11, fill=MUTED, anchor="middle"))
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text and attribute above is escaped


def _nice(value: float) -> float:
    """A round top for the scale at or above ``value`` (1, 2, 5 × a power of ten); 4 for an empty chart."""
    if value <= 0:
        return 4.0
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value:
        magnitude /= 10
    for factor in (1, 2, 2.5, 5, 10):
        if magnitude * factor >= value:
            top = magnitude * factor
            break
    return top if top >= 4 or value > 4 else 4.0


def _round(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 1)
