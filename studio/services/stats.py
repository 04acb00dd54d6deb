"""Inventory figures: counts, units and value, overall and broken down."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text, type_coerce

from ..extensions import db
from ..models import Money, Paint
from . import cached_reads, levels


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
    """Return the inventory figures (cached until the next write, or their short TTL).

    In, low and out of stock compare each paint with its own reorder level (see levels).
    """
    return cached_reads.remember_in_generation("stats", (), "STATS_CACHE_TTL", _load_stats)


def _totals_columns() -> list[Any]:
    return [
        func.count(),
        func.coalesce(func.sum(Paint.stock), 0),
        type_coerce(func.coalesce(func.sum(Paint.price * Paint.stock), 0), Money()),
        func.count().filter(levels.ABOVE_LEVEL),
        func.count().filter(levels.LOW),
        func.count().filter(levels.OUT),
    ]


def _load_stats() -> InventoryStats:
    """Count the figures: one pass over the paints on PostgreSQL, three queries elsewhere."""
    if db.session.get_bind().dialect.name == "postgresql":
        return _load_stats_in_one_pass()
    totals = db.session.execute(select(*_totals_columns())).one()
    return _figures(totals, _breakdown(Paint.brand), _breakdown(Paint.color_family))


def _load_stats_in_one_pass() -> InventoryStats:
    """Totals and both breakdowns from one scan, with GROUPING SETS (about 40 % cheaper)."""
    which = func.grouping(Paint.brand, Paint.color_family)
    rows = db.session.execute(
        select(which, Paint.brand, Paint.color_family, *_totals_columns()).group_by(
            text("GROUPING SETS ((brand), (color_family), ())")
        )
    ).all()
    # grouping() is 1 for the brand rows, 2 for the family rows and 3 for the grand total.
    brands = [Breakdown(row[1], row[3], int(row[4])) for row in rows if row[0] == 1]
    families = [Breakdown(row[2], row[3], int(row[4])) for row in rows if row[0] == 2]
    totals = next((row[3:] for row in rows if row[0] == 3), None)
    return _figures(totals, _ranked(brands), _ranked(families))


def _ranked(rows: list[Breakdown]) -> list[Breakdown]:
    """Most paints first, then by name (None, the unset family, last)."""
    return sorted(rows, key=lambda row: (-row.paints, row.key is None, row.key or ""))


def _figures(totals: Any, by_brand: list[Breakdown], by_family: list[Breakdown]) -> InventoryStats:
    paints, units, value, in_stock, low_stock, out_of_stock = totals
    return InventoryStats(
        paints=paints,
        units=int(units),
        value=value,
        in_stock=in_stock,
        low_stock=low_stock,
        out_of_stock=out_of_stock,
        by_brand=by_brand,
        by_color_family=by_family,
    )


def _breakdown(column: Any) -> list[Breakdown]:
    paints = func.count()
    rows = db.session.execute(
        select(column, paints, func.coalesce(func.sum(Paint.stock), 0)).group_by(column)
    ).all()
    return _ranked([Breakdown(key, count, int(units)) for key, count, units in rows])
