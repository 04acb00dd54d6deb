"""Inventory figures: counts, units and value, overall and broken down."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, type_coerce

from ..extensions import db
from ..models import Money, Paint
from . import cache


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
    low_stock_threshold: int
    by_brand: list[Breakdown]
    by_color_family: list[Breakdown]


def inventory_stats(low_stock_threshold: int) -> InventoryStats:
    """Return the inventory figures (cached until the next write, or their short TTL)."""
    return cache.remember_in_generation(
        "stats", low_stock_threshold, "STATS_CACHE_TTL", lambda: _load_stats(low_stock_threshold)
    )


def _load_stats(low_stock_threshold: int) -> InventoryStats:
    """Count the figures; each breakdown is one aggregate query."""
    value = type_coerce(func.coalesce(func.sum(Paint.price * Paint.stock), 0), Money())
    totals = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Paint.stock), 0),
            value,
            func.count().filter(Paint.stock > low_stock_threshold),
            func.count().filter(Paint.stock.between(1, low_stock_threshold)),
            func.count().filter(Paint.stock == 0),
        )
    ).one()
    return InventoryStats(
        paints=totals[0],
        units=int(totals[1]),
        value=totals[2],
        in_stock=totals[3],
        low_stock=totals[4],
        out_of_stock=totals[5],
        low_stock_threshold=low_stock_threshold,
        by_brand=_breakdown(Paint.brand),
        by_color_family=_breakdown(Paint.color_family),
    )


def _breakdown(column: Any) -> list[Breakdown]:
    paints = func.count()
    rows = db.session.execute(
        select(column, paints, func.coalesce(func.sum(Paint.stock), 0))
        .group_by(column)
        .order_by(paints.desc(), column)
    ).all()
    return [Breakdown(key, count, int(units)) for key, count, units in rows]
