"""Draw a workflow as an SVG diagram, from its definition alone: no external service, no script, no web font.

The layout is deterministic (the same definition gives the same bytes) and simple:

- stages go in layers, top to bottom, by their shortest distance from the initial stage; final stages get a last
  layer of their own, so that the transitions that close a case from every stage all point down and ``reopen`` reads
  as a way back;
- within a layer, a stage sits under the mean position of the stages that lead to it (fewer crossings), then in file
  order;
- a transition to the next layer is an S-curve from the bottom of one box to the top of the next; to a neighbour in
  the same layer, a short horizontal arrow; every other one (back edges such as ``return_plan``, ``new_plan_cycle``
  and ``reopen``, long forward edges such as ``close``) goes round the side in a lane of its own, with rounded
  corners, and back edges are dashed and coloured.

Colours and sizes are presentation attributes (``fill``, ``font-size``, ...), never ``style``: the site's Content
Security Policy (``style-src 'self'``, :mod:`casework.security.headers`) blocks inline styles in a page. The words the
diagram adds to the definition's own labels (deadlines, the legend) come in Vietnamese and English, like the labels,
so that the function needs no request.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from casework.workflow.definition import Deadline, Definition, Stage, Transition

_WORDS = {
    "vi": {
        "hours": "{n} giờ",
        "hour": "{n} giờ",
        "working_days": "{n} ngày làm việc",
        "working_day": "{n} ngày làm việc",
        "deadline": "Thời hạn: {d}",
        "danger": "Nguy hiểm tức thời: {d}",
        "start": "Bắt đầu",
        "final": "Bước kết thúc",
        "back": "Quay lại bước trước",
    },
    "en": {
        "hours": "{n} hours",
        "hour": "{n} hour",
        "working_days": "{n} working days",
        "working_day": "{n} working day",
        "deadline": "Deadline: {d}",
        "danger": "Immediate danger: {d}",
        "start": "Start",
        "final": "Final stage",
        "back": "Back to an earlier stage",
    },
}

FONT_FAMILY = "Noto Sans, Segoe UI, Roboto, Arial, sans-serif"  # as casework.css: local fonts with Vietnamese marks

# Geometry, in SVG user units (pixels at 100 %).
BOX_W = 220
H_GAP = 120  # between boxes of one layer: room for the label of an arrow between neighbours
V_GAP = 86  # between layers: room for two lines of an arrow's label
PAD_X, PAD_Y = 10, 10  # inside a box
LABEL_SIZE, LABEL_LINE = 13, 17
DETAIL_SIZE, DETAIL_LINE = 11.5, 15
EDGE_SIZE, EDGE_LINE = 11, 13
LANE_MARGIN, LANE_GAP, CORNER = 26, 14, 10
LABEL_CHARS = 26  # a line of an arrow's label, at most
START_ROOM = 44  # above the first layer: the start dot
MARGIN = 12  # round the whole drawing

INK, MUTED, DANGER = "#1d2430", "#5b6573", "#b3261e"
FORWARD, BACK = "#3d4a5c", "#a15c00"
BOX_FILL, BOX_STROKE = "#ffffff", "#0f3d66"
FINAL_FILL, FINAL_STROKE = "#eef1f5", "#5b6573"
INITIAL_STROKE = "#0b5cad"

# Characters XML 1.0 does not allow, whatever the escaping (a TOML string may hold them as \u escapes).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _words(locale: str | None) -> dict[str, str]:
    return _WORDS["en" if (locale or "vi")[:2] == "en" else "vi"]


def deadline_words(deadline: Deadline, locale: str | None = "vi") -> str:
    """The deadline's amount in words: "12 giờ", "5 ngày làm việc" (or "12 hours", "5 working days" in English)."""
    words = _words(locale)
    if deadline.hours is not None:
        return words["hour" if deadline.hours == 1 else "hours"].format(n=deadline.hours)
    return words["working_day" if deadline.working_days == 1 else "working_days"].format(n=deadline.working_days)


# --- text -----------------------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    return _NOT_XML.sub("", unicodedata.normalize("NFC", text))


def _esc(text: str) -> str:
    """Text for an element's content."""
    return escape(_clean(text))


def _attr(text: str) -> str:
    """Text for an attribute, quoted."""
    return '"' + escape(_clean(text), {'"': "&quot;"}) + '"'


def _num(value: float) -> str:
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _text_width(text: str, size: float) -> float:
    """A generous estimate (no font is measured): about 0.6 em a character in a sans-serif face."""
    return len(_clean(text)) * size * 0.6


def _wrap(text: str, width: int, max_lines: int) -> list[str]:
    """Break ``text`` into lines of at most ``width`` characters; the last kept line ends with "…" when cut."""
    lines: list[str] = []
    current = ""
    for word in _clean(text).split():
        while len(word) > width:  # a word longer than a line is cut
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= width:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1].rstrip() + "…"
    return lines or [""]


# --- layout ---------------------------------------------------------------------------------------------------------


@dataclass
class _Box:
    stage: Stage
    layer: int
    index: int
    count: int  # boxes in the layer
    x: float = 0
    y: float = 0
    h: float = 0
    label_lines: list[str] = field(default_factory=list)
    details: list[tuple[str, str]] = field(default_factory=list)  # (text, colour)

    @property
    def cx(self) -> float:
        return self.x + BOX_W / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def right(self) -> float:
        return self.x + BOX_W

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def free(self, side: str) -> bool:
        """No other box of the layer stands between this one and ``side`` of the drawing."""
        return self.index == 0 if side == "left" else self.index == self.count - 1


@dataclass
class _Edge:
    transition: Transition
    source: str
    target: str
    kind: str  # "down", "beside", "arc", "lane" or "loop"
    back: bool
    side: str = ""
    lane: int = 0
    start: tuple[float, float] = (0, 0)
    end: tuple[float, float] = (0, 0)


def _layers(definition: Definition) -> dict[str, int]:
    """Each stage's layer: its shortest distance from the initial stage; final stages after all the others."""
    distance = {definition.initial: 0}
    queue = deque([definition.initial])
    while queue:
        here = queue.popleft()
        for transition in definition.transitions:
            if here in transition.sources and transition.to not in distance:
                distance[transition.to] = distance[here] + 1
                queue.append(transition.to)
    finals = [s for s, stage in definition.stages.items() if stage.final and s != definition.initial]
    others = [s for s in definition.stages if s not in finals]
    last = max((distance[s] for s in others if s in distance), default=0)
    layers = {}
    for stage_id in others:
        # The loader refuses unreachable stages; one built in code without it still gets a place.
        layers[stage_id] = distance.get(stage_id, last + 1)
    after = max(layers.values(), default=0) + 1
    for stage_id in finals:
        layers[stage_id] = after
    return layers


def _order(definition: Definition, layers: dict[str, int]) -> dict[int, list[str]]:
    """The stages of each layer, left to right: under the mean position of their predecessors, then file order."""
    file_index = {stage_id: n for n, stage_id in enumerate(definition.stages)}
    position: dict[str, float] = {}
    ordered: dict[int, list[str]] = {}
    for layer in sorted(set(layers.values())):
        members = [s for s in definition.stages if layers[s] == layer]

        def key(stage_id: str, layer: int = layer) -> tuple[float, int]:
            before = [
                position[source]
                for transition in definition.transitions
                if transition.to == stage_id
                for source in transition.sources
                if layers[source] < layer
            ]
            return (sum(before) / len(before) if before else 0.0, file_index[stage_id])

        members.sort(key=key)
        for index, stage_id in enumerate(members):
            position[stage_id] = index - (len(members) - 1) / 2
        ordered[layer] = members
    return ordered


def _box_content(box: _Box, locale: str) -> None:
    words = _words(locale)
    stage = box.stage
    box.label_lines = _wrap(stage.label.for_locale(locale), int((BOX_W - 2 * PAD_X) / (LABEL_SIZE * 0.58)), 3)
    detail_width = int((BOX_W - 2 * PAD_X) / (DETAIL_SIZE * 0.55))
    if stage.form:
        box.details.extend((line, MUTED) for line in _wrap(stage.form, detail_width, 1))
    if stage.deadline is not None:
        text = words["deadline"].format(d=deadline_words(stage.deadline, locale))
        box.details.extend((line, INK) for line in _wrap(text, detail_width, 2))
    if stage.danger_deadline is not None:
        text = words["danger"].format(d=deadline_words(stage.danger_deadline, locale))
        box.details.extend((line, DANGER) for line in _wrap(text, detail_width, 2))


def _place(definition: Definition, locale: str) -> dict[str, _Box]:
    layers = _layers(definition)
    ordered = _order(definition, layers)
    boxes: dict[str, _Box] = {}
    for layer, members in ordered.items():
        for index, stage_id in enumerate(members):
            box = _Box(definition.stages[stage_id], layer, index, len(members))
            _box_content(box, locale)
            boxes[stage_id] = box
    height = max(2 * PAD_Y + len(b.label_lines) * LABEL_LINE + len(b.details) * DETAIL_LINE for b in boxes.values())
    height = max(height, 56)
    for box in boxes.values():
        box.h = height
        box.x = (box.index - (box.count - 1) / 2) * (BOX_W + H_GAP) - BOX_W / 2
        box.y = START_ROOM + box.layer * (height + V_GAP)
    return boxes


def _edges(definition: Definition, boxes: dict[str, _Box]) -> list[_Edge]:
    """One edge per (source stage, transition), in file order, classified and given its side and lane."""
    edges = []
    for transition in definition.transitions:
        for source in transition.sources:
            a, b = boxes[source], boxes[transition.to]
            if source == transition.to:
                kind = "loop"
            elif b.layer == a.layer + 1:
                kind = "down"
            elif b.layer == a.layer:
                kind = "beside" if abs(b.index - a.index) == 1 else "arc"
            else:
                kind = "lane"
            edges.append(_Edge(transition, source, transition.to, kind, back=b.layer < a.layer))
    file_index = {stage_id: n for n, stage_id in enumerate(definition.stages)}
    # The edges of one transition into one stage, on one side, share a lane (a bus with branches): "close" from
    # every open stage is one line down the side, not eight.
    groups: dict[tuple[str, str, str], list[_Edge]] = {}
    for edge in edges:
        if edge.kind != "lane":
            continue
        a, b = boxes[edge.source], boxes[edge.target]
        preferred = "right" if edge.back else "left"
        other = "left" if preferred == "right" else "right"
        open_sides = [side for side in (preferred, other) if a.free(side) and b.free(side)]
        edge.side = open_sides[0] if open_sides else preferred
        groups.setdefault((edge.side, edge.transition.id, edge.target), []).append(edge)
    for side in ("left", "right"):
        members = [group for key, group in groups.items() if key[0] == side]
        # Buses inside (their branches would cross every lane inside them), then short spans inside long ones.
        members.sort(
            key=lambda group: (
                -len(group),
                max(abs(boxes[e.target].layer - boxes[e.source].layer) for e in group),
                group[0].transition.number,
                file_index[group[0].source],
            )
        )
        for lane, group in enumerate(members):
            for edge in group:
                edge.lane = lane
    return edges


def _ports(edges: list[_Edge], boxes: dict[str, _Box]) -> None:
    """Spread the ends of the edges that meet one side of a box, in the order that crosses least."""
    sides: dict[tuple[str, str], dict[tuple, tuple[tuple, list[_Edge], str]]] = {}

    def attach(stage_id: str, side: str, sort_key: tuple, edge: _Edge, end: str, shared: tuple = ()) -> None:
        """``shared``: the ends with the same key meet the box at one point (a lane's bus)."""
        ends = sides.setdefault((stage_id, side), {})
        key = shared or (edge.transition.id, edge.source, end)
        ends.setdefault(key, (sort_key, [], end))[1].append(edge)

    for edge in edges:
        a, b = boxes[edge.source], boxes[edge.target]
        number = edge.transition.number
        if edge.kind == "down":
            attach(edge.source, "bottom", (b.cx, number), edge, "start")
            attach(edge.target, "top", (a.cx, number), edge, "end")
        elif edge.kind == "arc":
            attach(edge.source, "top", (b.cx, number), edge, "start")
            attach(edge.target, "top", (a.cx, number), edge, "end")
        elif edge.kind == "lane":
            # Edges to stages above attach higher, inner lanes first; edges to stages below attach lower, outer lanes
            # first: then no lane's vertical run crosses another's way in or out.
            def key(here: _Box, there: _Box, edge: _Edge = edge, number: int = number) -> tuple:
                return (0, edge.lane, number) if there.layer < here.layer else (1, -edge.lane, number)

            attach(edge.source, edge.side, key(a, b), edge, "start")
            attach(edge.target, edge.side, key(b, a), edge, "end", shared=("bus", edge.lane))
    for (stage_id, side), ends in sorted(sides.items()):
        box = boxes[stage_id]
        ordered = sorted(ends.values(), key=lambda end: end[0])
        count = len(ordered)
        for k, (_key, attached, end) in enumerate(ordered):
            offset = k - (count - 1) / 2
            if side in ("top", "bottom"):
                point = (box.cx + offset * min(40, BOX_W / (count + 1)), box.y if side == "top" else box.bottom)
            else:
                point = (box.x if side == "left" else box.right, box.cy + offset * min(18, box.h / (count + 1)))
            for edge in attached:
                if end == "start":
                    edge.start = point
                else:
                    edge.end = point


# --- drawing --------------------------------------------------------------------------------------------------------


class _Canvas:
    """SVG fragments and the extent they cover, so that the viewBox fits the drawing."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.min_x = self.min_y = float("inf")
        self.max_x = self.max_y = float("-inf")

    def cover(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.min_x, self.max_x = min(self.min_x, x0, x1), max(self.max_x, x0, x1)
        self.min_y, self.max_y = min(self.min_y, y0, y1), max(self.max_y, y0, y1)

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def text(
        self,
        lines: list[str],
        x: float,
        y: float,
        *,
        size: float,
        line: float,
        anchor: str = "middle",
        fill: str = INK,
        weight: str = "",
        halo: bool = False,
        extra: str = "",
    ) -> None:
        """Lines of text, the first baseline at ``y``."""
        width = max(_text_width(t, size) for t in lines)
        left = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
        self.cover(left, y - size, left + width, y + (len(lines) - 1) * line + size * 0.3)
        attrs = f'x="{_num(x)}" y="{_num(y)}" font-size="{_num(size)}" text-anchor="{anchor}" fill="{fill}"'
        if weight:
            attrs += f' font-weight="{weight}"'
        if halo:
            # White outline under the letters: readable where the text crosses a line.
            attrs += ' stroke="#ffffff" stroke-width="4" stroke-linejoin="round" paint-order="stroke"'
        spans = "".join(f'<tspan x="{_num(x)}" y="{_num(y + n * line)}">{_esc(t)}</tspan>' for n, t in enumerate(lines))
        self.add(f"<text {attrs}{extra}>{spans}</text>")


def _edge_attrs(edge: _Edge) -> str:
    return f" data-transition={_attr(edge.transition.id)} data-from={_attr(edge.source)} data-to={_attr(edge.target)}"


def _edge_geometry(edge: _Edge, boxes: dict[str, _Box], lanes_x: dict[str, float]) -> tuple[str, dict]:
    """The path of ``edge`` and where its label goes.

    :returns: ``(d, label)``: the path data, and the label's anchor point (``x``, ``y``, ``anchor``), its line length
        in characters (``width``) and whether it is centred on the point or stands above (else below) it.
    """
    (x1, y1), (x2, y2) = edge.start, edge.end
    a = boxes[edge.source]
    if edge.kind == "down":
        middle = (y1 + y2) / 2
        d = f"M{_num(x1)},{_num(y1)} C{_num(x1)},{_num(middle)} {_num(x2)},{_num(middle)} {_num(x2)},{_num(y2)}"
        mx = (x1 + x2) / 2
        # Labels lean away from the middle of the drawing, so that two arrows into one box keep theirs apart.
        anchor, lx = ("end", mx - 6) if mx < -1 else ("start", mx + 6)
        label = {"x": lx, "y": middle, "anchor": anchor, "width": LABEL_CHARS}
        if abs(x2 - x1) < 1:
            label["centred"] = True
        else:
            # A slanting curve is almost flat at its middle: the label goes on the side the line leaves free, above
            # it where the line descends the way the text runs, below it where the line climbs.
            label["above"] = (x2 > x1) == (anchor == "start")
        return d, label
    if edge.kind == "beside":
        b = boxes[edge.target]
        rightward = b.index > a.index
        y = a.cy - 8 if rightward else a.cy + 8
        x1, x2 = (a.right, b.x) if rightward else (a.x, b.right)
        d = f"M{_num(x1)},{_num(y)} H{_num(x2)}"
        width = int((H_GAP - 8) / (EDGE_SIZE * 0.52))
        return d, {"x": (x1 + x2) / 2, "y": y, "anchor": "middle", "width": width, "above": rightward}
    if edge.kind == "arc":
        lift = V_GAP * 0.7
        top = min(y1, y2) - lift
        d = f"M{_num(x1)},{_num(y1)} C{_num(x1)},{_num(top)} {_num(x2)},{_num(top)} {_num(x2)},{_num(y2)}"
        apex = (y1 + y2) / 8 + top * 0.75  # the curve's highest point (t = 1/2)
        return d, {"x": (x1 + x2) / 2, "y": apex, "anchor": "middle", "width": 28, "above": True}
    if edge.kind == "loop":
        x0, y0 = a.right - 24, a.y
        d = (
            f"M{_num(x0)},{_num(y0)} C{_num(x0)},{_num(y0 - 34)} {_num(a.right + 34)},{_num(a.y + 16)}"
            f" {_num(a.right)},{_num(a.y + 16)}"
        )
        return d, {"x": a.right + 8, "y": a.y - 10, "anchor": "start", "width": 24, "above": True}
    # A lane: out of the side, along the lane, into the other box's side, with rounded corners.
    lane = lanes_x[edge.side] + (-1 if edge.side == "left" else 1) * edge.lane * LANE_GAP
    out = -1 if edge.side == "left" else 1
    turn = 1 if y2 > y1 else -1
    r = min(CORNER, abs(y2 - y1) / 2)
    d = (
        f"M{_num(x1)},{_num(y1)} H{_num(lane - out * r)} Q{_num(lane)},{_num(y1)} {_num(lane)},{_num(y1 + turn * r)}"
        f" V{_num(y2 - turn * r)} Q{_num(lane)},{_num(y2)} {_num(lane - out * r)},{_num(y2)} H{_num(x2)}"
    )
    anchor = "end" if edge.side == "left" else "start"
    return d, {"x": x1 + out * 6, "y": y1, "anchor": anchor, "width": LABEL_CHARS, "above": True, "lane": lane}


def _lane_bases(edges: list[_Edge], boxes: dict[str, _Box], locale: str) -> dict[str, float]:
    """Where the innermost lane of each side runs: outside every box, and outside the labels beside the boxes."""
    left = min(b.x for b in boxes.values()) - LANE_MARGIN
    right = max(b.right for b in boxes.values()) + LANE_MARGIN
    for edge in edges:
        if edge.kind != "lane":
            continue
        lines = _wrap(edge.transition.label.for_locale(locale), LABEL_CHARS, 2)
        width = max(_text_width(line, EDGE_SIZE) for line in lines)
        box = boxes[edge.source]
        if edge.side == "left":
            left = min(left, box.x - 6 - width - 8)
        else:
            right = max(right, box.right + 6 + width + 8)
    return {"left": left, "right": right}


def _draw_box(canvas: _Canvas, box: _Box, initial: bool, locale: str) -> None:
    stage = box.stage
    fill, stroke, width = BOX_FILL, BOX_STROKE, "1.5"
    if stage.final:
        fill, stroke = FINAL_FILL, FINAL_STROKE
    if initial:
        stroke, width = INITIAL_STROKE, "3"
    flags = (' data-initial="true"' if initial else "") + (' data-final="true"' if stage.final else "")
    canvas.add(f'<g class="stage" data-stage={_attr(stage.id)}{flags}>')
    canvas.add(f"<title>{_esc(stage.label.for_locale(locale))} ({_esc(stage.id)})</title>")
    canvas.add(
        f'<rect x="{_num(box.x)}" y="{_num(box.y)}" width="{BOX_W}" height="{_num(box.h)}" rx="6"'
        f' fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>'
    )
    if stage.final:
        # A double border: the end of the procedure.
        canvas.add(
            f'<rect x="{_num(box.x + 4)}" y="{_num(box.y + 4)}" width="{BOX_W - 8}" height="{_num(box.h - 8)}" rx="4"'
            f' fill="none" stroke="{stroke}" stroke-width="1"/>'
        )
    content = len(box.label_lines) * LABEL_LINE + len(box.details) * DETAIL_LINE
    y = box.y + (box.h - content) / 2 + LABEL_SIZE
    canvas.text(box.label_lines, box.cx, y, size=LABEL_SIZE, line=LABEL_LINE, weight="600")
    y += len(box.label_lines) * LABEL_LINE - LABEL_SIZE + DETAIL_SIZE + 2
    for text, colour in box.details:
        canvas.text([text], box.cx, y, size=DETAIL_SIZE, line=DETAIL_LINE, fill=colour)
        y += DETAIL_LINE
    canvas.add("</g>")
    canvas.cover(box.x, box.y, box.right, box.bottom)


def _draw_label(canvas: _Canvas, edge: _Edge, label: dict, locale: str) -> None:
    lines = _wrap(edge.transition.label.for_locale(locale), label["width"], 2)
    count = len(lines)
    if label.get("centred"):
        first = label["y"] - (count - 1) * EDGE_LINE / 2 + EDGE_SIZE * 0.35
    elif label.get("above"):
        first = label["y"] - 5 - (count - 1) * EDGE_LINE
    else:
        first = label["y"] + 5 + EDGE_SIZE
    colour = BACK if edge.back else FORWARD
    canvas.text(
        lines,
        label["x"],
        first,
        size=EDGE_SIZE,
        line=EDGE_LINE,
        anchor=label["anchor"],
        fill=colour,
        halo=True,
        extra=' class="transition-label"' + _edge_attrs(edge),
    )


def _marker(marker_id: str, colour: str) -> str:
    return (
        f'<marker id="{marker_id}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9"'
        f' markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
    )


def _draw_legend(canvas: _Canvas, x: float, y: float, words: dict[str, str], back_marker: str) -> None:
    canvas.add('<g class="legend">')
    canvas.add(
        f'<rect x="{_num(x)}" y="{_num(y - 12)}" width="28" height="18" rx="3" fill="{FINAL_FILL}"'
        f' stroke="{FINAL_STROKE}" stroke-width="1.5"/>'
        f'<rect x="{_num(x + 3)}" y="{_num(y - 9)}" width="22" height="12" rx="2" fill="none"'
        f' stroke="{FINAL_STROKE}" stroke-width="1"/>'
    )
    canvas.cover(x, y - 12, x + 28, y + 6)
    x += 36
    canvas.text([words["final"]], x, y + 2, size=EDGE_SIZE, line=EDGE_LINE, anchor="start", fill=MUTED)
    x += _text_width(words["final"], EDGE_SIZE) + 24
    canvas.add(
        f'<path d="M{_num(x)},{_num(y - 3)} H{_num(x + 34)}" fill="none" stroke="{BACK}" stroke-width="1.5"'
        f' stroke-dasharray="6 4" marker-end="url(#{back_marker})"/>'
    )
    x += 42
    canvas.text([words["back"]], x, y + 2, size=EDGE_SIZE, line=EDGE_LINE, anchor="start", fill=MUTED)
    canvas.add("</g>")


def to_svg(definition: Definition, locale: str = "vi") -> str:
    """Draw ``definition`` as a self-contained SVG document (no script, no link, no external resource).

    Every text comes from the definition or from this module, and is XML-escaped. Each stage is a
    ``<g class="stage" data-stage="…">``; each (source stage, transition) pair is one ``<path class="transition">``
    with ``data-transition``, ``data-from`` and ``data-to`` and an arrowhead (``marker-end``).

    :param locale: "vi" (the default) or "en": the language of the labels and of the words the diagram adds.
    """
    locale = "en" if (locale or "vi")[:2] == "en" else "vi"
    words = _WORDS[locale]
    prefix = "wf-" + re.sub(r"[^A-Za-z0-9_-]", "_", definition.name)
    arrow, back_arrow, title_id = f"{prefix}-arrow", f"{prefix}-arrow-back", f"{prefix}-title"

    boxes = _place(definition, locale)
    edges = _edges(definition, boxes)
    _ports(edges, boxes)
    lanes_x = _lane_bases(edges, boxes, locale)

    paths, shapes, labels = _Canvas(), _Canvas(), _Canvas()
    for edge in edges:
        d, label = _edge_geometry(edge, boxes, lanes_x)
        if "lane" in label:
            paths.cover(label["lane"], edge.start[1], label["lane"], edge.end[1])
        colour, marker = (BACK, back_arrow) if edge.back else (FORWARD, arrow)
        dashes = ' stroke-dasharray="6 4"' if edge.back else ""
        paths.add(
            f'<path class="transition"{_edge_attrs(edge)} d="{d}" fill="none" stroke="{colour}" stroke-width="1.5"'
            f'{dashes} marker-end="url(#{marker})"><title>{_esc(edge.transition.label.for_locale(locale))}</title>'
            "</path>"
        )
        _draw_label(labels, edge, label, locale)

    initial = boxes[definition.initial]
    dot_y = initial.y - 30
    shapes.add(
        f'<g class="start" data-stage={_attr(definition.initial)}>'
        f'<circle cx="{_num(initial.cx)}" cy="{_num(dot_y)}" r="7" fill="{INITIAL_STROKE}"/>'
        f'<path d="M{_num(initial.cx)},{_num(dot_y + 7)} V{_num(initial.y)}" fill="none" stroke="{INITIAL_STROKE}"'
        f' stroke-width="1.5" marker-end="url(#{arrow})"/>'
    )
    shapes.text(
        [words["start"]], initial.cx + 12, dot_y + 4, size=EDGE_SIZE, line=EDGE_LINE, anchor="start", fill=MUTED
    )
    shapes.add("</g>")
    shapes.cover(initial.cx - 7, dot_y - 7, initial.cx + 7, initial.y)
    for stage_id in definition.stages:
        _draw_box(shapes, boxes[stage_id], stage_id == definition.initial, locale)

    drawn = (paths, shapes, labels)
    min_x = min(c.min_x for c in drawn)
    max_y = max(c.max_y for c in drawn)
    legend = _Canvas()
    _draw_legend(legend, min_x, max_y + 30, words, back_arrow)
    drawn += (legend,)

    left = min(c.min_x for c in drawn) - MARGIN
    top = min(c.min_y for c in drawn) - MARGIN
    width = max(c.max_x for c in drawn) + MARGIN - left
    height = max(c.max_y for c in drawn) + MARGIN - top
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow-diagram" role="img" aria-labelledby="{title_id}"'
        f' width="{_num(width)}" height="{_num(height)}"'
        f' viewBox="{_num(left)} {_num(top)} {_num(width)} {_num(height)}"'
        f' font-family="{FONT_FAMILY}">'
        f'<title id="{title_id}">{_esc(definition.label.for_locale(locale))}</title>'
        f"<defs>{_marker(arrow, FORWARD)}{_marker(back_arrow, BACK)}</defs>"
        f'<rect x="{_num(left)}" y="{_num(top)}" width="{_num(width)}" height="{_num(height)}" fill="#ffffff"/>'
    )
    body = "\n".join(part for canvas in drawn for part in canvas.parts)
    return f"{head}\n{body}\n</svg>\n"
