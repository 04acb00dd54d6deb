"""Bar charts drawn as inline SVG on the server."""

from collections.abc import Sequence
from dataclasses import dataclass

from ..services.stats import Breakdown

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


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    y: int
    width: float
    colour: str


LABEL_WIDTH, PLOT_WIDTH, BAR_HEIGHT, GAP = 150, 330, 18, 8


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    height: int
    label_width: int = LABEL_WIDTH
    plot_width: int = PLOT_WIDTH
    bar_height: int = BAR_HEIGHT
    gap: int = GAP


def bar_chart(
    title: str, rows: Sequence[Breakdown], *, coloured: bool = False, limit: int = 12
) -> BarChart:
    """Return a horizontal bar chart of units per row, largest first."""
    top = sorted(rows, key=lambda row: row.units, reverse=True)[:limit]
    peak = max((row.units for row in top), default=0) or 1
    bars = []
    for index, row in enumerate(top):
        label = row.key or "Unspecified"
        colour = FAMILY_COLOURS.get(label, DEFAULT_COLOUR) if coloured else DEFAULT_COLOUR
        width = PLOT_WIDTH * row.units / peak
        bars.append(Bar(label, row.units, index * (BAR_HEIGHT + GAP), width, colour))
    return BarChart(title, bars, max(len(bars), 1) * (BAR_HEIGHT + GAP))
