"""Inventory figures: counts, units and value, overall and broken down."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from ..extensions import db
from ..models import PaintTotals


@dataclass(frozen=True)
class Breakdown:
    key: str | None
    paints: int
    units: int


@dataclass(frozen=True)
class InventoryStats:
    paints: int
    units: int
    value: Decimal
    in_stock: int
    low_stock: int
    out_of_stock: int
    by_brand: list[Breakdown]
    by_color_family: list[Breakdown]


def inventory_stats() -> InventoryStats:
    """Return the inventory figures, read from the running totals of each brand and family.

    The database keeps those totals with every write (see models.PaintTotals), so this
    reads about a hundred rows however many paints there are; exact, hence not cached.
    In, low and out of stock compare each paint with its own reorder level (see levels).
    """
    groups = db.session.scalars(select(PaintTotals).where(PaintTotals.paints != 0)).all()
    return _figures(groups)


def _figures(groups: Sequence[PaintTotals]) -> InventoryStats:
    return InventoryStats(
        paints=sum(group.paints for group in groups),
        units=sum(group.units for group in groups),
        value=sum((group.value for group in groups), Decimal("0.00")),
        in_stock=sum(group.in_stock for group in groups),
        low_stock=sum(group.low_stock for group in groups),
        out_of_stock=sum(group.out_of_stock for group in groups),
        by_brand=_breakdown((group.brand, group) for group in groups),
        by_color_family=_breakdown((group.color_family or None, group) for group in groups),
    )


def _breakdown(keyed: Iterable[tuple[str | None, PaintTotals]]) -> list[Breakdown]:
    """Add the groups up by key ('' is the unset family, None), most paints first."""
    paints: dict[str | None, int] = defaultdict(int)
    units: dict[str | None, int] = defaultdict(int)
    for key, group in keyed:
        paints[key] += group.paints
        units[key] += group.units
    return _ranked([Breakdown(key, paints[key], units[key]) for key in paints if paints[key]])


def _ranked(rows: list[Breakdown]) -> list[Breakdown]:
    """Most paints first, then by name (None, the unset family, last)."""
    return sorted(rows, key=lambda row: (-row.paints, row.key is None, row.key or ""))
