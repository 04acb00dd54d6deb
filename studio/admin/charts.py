"""Charts drawn as inline SVG on the server: bars, lines over time and gauges."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..services.stats import Breakdown
from .formatting import compact

FAMILY_COLOURS = {
    "Red": "#c62828",
    "Orange": "#ef6c00",
    "Yellow": "#f9a825",
    "Green": "#2e7d32",
    "Blue": "#1565c0",
    "Purple": "#6a1b9a",
    "Pink": "#d81b60",
    "Brown": "#6d4c41",
    "Grey": "#757575",
    "Black": "#212121",
    "White": "#cfd8dc",
    "Flesh": "#d7a17f",
    "Metallic": "#9e9e9e",
}
DEFAULT_COLOUR = "#3556c8"


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def coordinate(value: float) -> str:
    """Return a number for an SVG attribute: one decimal, never NaN or infinite."""
    return f"{value:.1f}" if math.isfinite(value) else "0.0"


def duration(seconds: float) -> str:
    """Return a duration in words a glance takes in: 45 s, 12 min, 3 h 5 min."""
    whole = max(int(seconds), 0) if math.isfinite(seconds) else 0
    if whole < 120:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    shown: str  # the value as the bar's label prints it, perhaps shortened (1.2 M)
    full: str  # the exact value, for the tooltip
    y: int
    width: float
    colour: str
    broken: bool = False  # drawn cut short: far longer than the others


LABEL_WIDTH, PLOT_WIDTH, BAR_HEIGHT, GAP = 150, 330, 18, 8
# A bar this many times the next one is cut short, so the others are not flattened to nothing.
OUTLIER = 5


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    height: int
    unit: str = "units"
    empty: str = "No paints yet."
    label_width: int = LABEL_WIDTH
    plot_width: int = PLOT_WIDTH
    bar_height: int = BAR_HEIGHT
    gap: int = GAP
    note: str = ""  # what the bars leave out, in words: "Top 12 of 40 brands; …"


def bar_chart(
    title: str,
    rows: Sequence[Breakdown],
    *,
    noun: str,
    coloured: bool = False,
    limit: int = 12,
) -> BarChart:
    """Return a horizontal bar chart of units per row, largest first; `noun` names the rows."""
    pairs = [(row.key or "Unspecified", row.units) for row in rows]
    colours = FAMILY_COLOURS if coloured else {}
    return bars(title, pairs, limit=limit, colours=colours, noun=noun, full="{:,}".format)


def bars(
    title: str,
    pairs: Sequence[tuple[str, float]],
    *,
    unit: str = "units",
    empty: str = "No paints yet.",
    show: Callable[[float], str] = compact,
    full: Callable[[float], str] | None = None,
    colours: dict[str, str] | None = None,
    limit: int = 12,
    noun: str = "",
) -> BarChart:
    """Return a horizontal bar chart of (label, value) pairs, largest first.

    Only the `limit` largest are drawn, and the chart's note says so. A bar more than OUTLIER
    times the next is drawn cut short, with its value printed, so the rest stay readable.
    """
    ranked = sorted(
        ((label, v) for label, v in pairs if finite(v)), key=lambda p: p[1], reverse=True
    )
    top = ranked[:limit]
    scale, broken = _scale(top)
    drawn = []
    for index, (label, value) in enumerate(top):
        colour = (colours or {}).get(label, DEFAULT_COLOUR)
        cut = broken and index == 0
        width = PLOT_WIDTH if cut else PLOT_WIDTH * max(value, 0) / scale
        y = index * (BAR_HEIGHT + GAP)
        drawn.append(Bar(label, value, show(value), (full or show)(value), y, width, colour, cut))
    height = max(len(drawn), 1) * (BAR_HEIGHT + GAP)
    note = _left_out(ranked, len(top), noun, unit, full or show)
    if broken:
        note = " ".join(filter(None, [note, f"The longest bar is cut short ({show(top[0][1])})."]))
    return BarChart(title, drawn, height, unit, empty, note=note)


def _scale(top: Sequence[tuple[str, float]]) -> tuple[float, bool]:
    """Return the value a full-width bar stands for, and whether the first bar is cut short."""
    peak = max((value for _, value in top), default=0) or 1
    if len(top) > 1 and 0 < top[1][1] and top[0][1] > OUTLIER * top[1][1]:
        return top[1][1] * 1.25, True
    return peak, False


def _left_out(
    ranked: Sequence[tuple[str, float]],
    shown: int,
    noun: str,
    unit: str,
    full: Callable[[float], str],
) -> str:
    """Return "Top 12 of 40 brands; the other 28 hold 1,234 units." or "" when all are shown."""
    rest = ranked[shown:]
    if not rest:
        return ""
    if not noun:  # timings and the like do not add up
        return f"Top {shown} of {len(ranked)}."
    held = full(sum(max(value, 0) for _, value in rest))
    others = "the other one holds" if len(rest) == 1 else f"the other {len(rest):,} hold"
    return f"Top {shown} of {len(ranked):,} {noun}; {others} {held} {unit}."


LINE_WIDTH, LINE_HEIGHT, LINE_TOP, LINE_BOTTOM, LINE_SIDE = 300, 80, 8, 8, 5


@dataclass(frozen=True)
class LineChart:
    """A value over time: the line's points and the figures a reader needs in words."""

    title: str
    unit: str
    points: str  # "x,y x,y …" for a <polyline>
    area: str  # path under the line, "" with fewer than two points
    last: tuple[str, str] | None  # where the latest value sits, for a dot
    latest: str
    highest: str
    count: int
    seconds: float  # from the first value to the latest
    width: int = LINE_WIDTH
    height: int = LINE_HEIGHT

    @property
    def base(self) -> int:
        return self.height - LINE_BOTTOM

    @property
    def period(self) -> str:
        return duration(self.seconds)

    @property
    def summary(self) -> str:
        if not self.count:
            return f"{self.title}: no samples yet"
        return (
            f"{self.title}: now {self.latest} {self.unit}, highest {self.highest} {self.unit} "
            f"over {self.period} ({self.count} sample{'s' if self.count != 1 else ''})"
        )


def line_chart(
    title: str,
    series: Sequence[tuple[float, float]],
    *,
    unit: str,
    show: Callable[[float], str] = "{:,.1f}".format,
) -> LineChart:
    """Return a line chart of (epoch seconds, value) pairs, oldest first; zero is the bottom."""
    kept = [(at, value) for at, value in series if finite(at) and finite(value)]
    if not kept:
        return LineChart(title, unit, "", "", None, "–", "–", 0, 0)
    start, end = kept[0][0], kept[-1][0]
    span = end - start
    top = max(max(value for _, value in kept), 0) or 1
    plot = LINE_HEIGHT - LINE_TOP - LINE_BOTTOM

    def place(at: float, value: float) -> tuple[str, str]:
        inner = LINE_WIDTH - 2 * LINE_SIDE
        x = LINE_SIDE + inner * (at - start) / span if span > 0 else LINE_WIDTH / 2
        y = LINE_TOP + plot * (1 - max(value, 0) / top)
        return coordinate(x), coordinate(y)

    placed = [place(at, value) for at, value in kept]
    points = " ".join(f"{x},{y}" for x, y in placed)
    bottom = coordinate(LINE_HEIGHT - LINE_BOTTOM)
    area = ""
    if len(placed) > 1:
        area = f"M{placed[0][0]},{bottom} L{points.replace(' ', ' L')} L{placed[-1][0]},{bottom} Z"
    return LineChart(
        title,
        unit,
        points,
        area,
        placed[-1],
        show(kept[-1][1]),
        show(max(value for _, value in kept)),
        len(kept),
        span,
    )


GAUGE_RADIUS, GAUGE_CENTRE_X, GAUGE_CENTRE_Y = 80, 100, 96


@dataclass(frozen=True)
class Gauge:
    """A half-circle dial from 0 to 100 %, with an optional mark where an alert starts."""

    title: str
    percent: float  # clamped to 0..100
    shown: str
    track: str  # path of the whole arc
    value: str  # path of the filled part, "" at 0 %
    level: str  # "good", "bad" (at or over the mark) or "plain" without a mark
    mark: tuple[str, str, str, str] | None  # x1, y1, x2, y2 of the alert tick
    width: int = 2 * GAUGE_CENTRE_X
    height: int = GAUGE_CENTRE_Y + 12


def on_arc(percent: float, radius: float) -> tuple[float, float]:
    """Return the point of the dial at `percent`: 0 on the left, 100 on the right."""
    angle = math.pi * (1 - percent / 100)
    return GAUGE_CENTRE_X + radius * math.cos(angle), GAUGE_CENTRE_Y - radius * math.sin(angle)


def arc_to(percent: float) -> str:
    x0, y0 = on_arc(0, GAUGE_RADIUS)
    x1, y1 = on_arc(percent, GAUGE_RADIUS)
    r = GAUGE_RADIUS
    return f"M{coordinate(x0)},{coordinate(y0)} A{r},{r} 0 0 1 {coordinate(x1)},{coordinate(y1)}"


def gauge(title: str, percent: float | None, *, alert_at: float | None = None) -> Gauge:
    """Return a dial showing `percent` (None when there is nothing to show yet)."""
    shown = f"{percent:.0f} %" if finite(percent) else "–"
    clamped = min(max(percent, 0.0), 100.0) if finite(percent) else 0.0
    mark, level = None, "plain"
    if finite(alert_at):
        level = "bad" if clamped >= alert_at else "good"
        inner = on_arc(min(max(alert_at, 0.0), 100.0), GAUGE_RADIUS - 14)
        outer = on_arc(min(max(alert_at, 0.0), 100.0), GAUGE_RADIUS + 14)
        mark = tuple(coordinate(n) for n in (*inner, *outer))
    value = arc_to(clamped) if clamped > 0 else ""
    return Gauge(title, clamped, shown, arc_to(100), value, level, mark)
