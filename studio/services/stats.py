"""Inventory figures: counts, units and value, overall and broken down."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, type_coerce

from ..extensions import db
from ..models import MoneyTotal, PaintTotals


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
    """Return the inventory figures, added up from the running totals of each group.

    The database keeps those totals with every write (see models.PaintTotals), so this
    reads a few hundred rows at most however many paints there are; exact, hence not
    cached. In, low and out of stock compare each paint with its own reorder level.
    """
    return _figures(db.session.execute(group_totals()).all())


def group_totals() -> Any:
    """Return a SELECT of each brand and family's figures, summed from its rows."""
    total = PaintTotals
    return select(
        total.brand,
        total.color_family,
        func.sum(total.paints),
        func.sum(total.units),
        type_coerce(func.sum(total.value), MoneyTotal()),
        func.sum(total.in_stock),
        func.sum(total.low_stock),
        func.sum(total.out_of_stock),
    ).group_by(total.brand, total.color_family)


@dataclass(frozen=True)
class GroupFigures:
    brand: str
    family: str | None
    paints: int
    units: int
    value: Decimal
    in_stock: int
    low_stock: int
    out_of_stock: int


def _figures(rows: Sequence[Any]) -> InventoryStats:
    groups = [
        GroupFigures(
            brand, family or None, int(paints), int(units), value, int(above), int(low), int(out)
        )
        for brand, family, paints, units, value, above, low, out in rows
    ]
    # A group whose paints are all gone is left out (its rows may not be folded away yet).
    groups = [group for group in groups if group.paints]
    return InventoryStats(
        paints=sum(group.paints for group in groups),
        units=sum(group.units for group in groups),
        value=sum((group.value for group in groups), Decimal("0.00")),
        in_stock=sum(group.in_stock for group in groups),
        low_stock=sum(group.low_stock for group in groups),
        out_of_stock=sum(group.out_of_stock for group in groups),
        by_brand=_breakdown((group.brand, group) for group in groups),
        by_color_family=_breakdown((group.family, group) for group in groups),
    )


def _breakdown(keyed: Iterable[tuple[str | None, GroupFigures]]) -> list[Breakdown]:
    """Add the groups up by key (None is the unset family), most paints first."""
    paints: dict[str | None, int] = defaultdict(int)
    units: dict[str | None, int] = defaultdict(int)
    for key, group in keyed:
        paints[key] += group.paints
        units[key] += group.units
    return _ranked([Breakdown(key, paints[key], units[key]) for key in paints if paints[key]])


def _ranked(rows: list[Breakdown]) -> list[Breakdown]:
    """Most paints first, then by name (None, the unset family, last)."""
    return sorted(rows, key=lambda row: (-row.paints, row.key is None, row.key or ""))
