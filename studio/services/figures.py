"""The running totals the figures are read from, checked against a recount of the paints.

Triggers keep the totals of each brand and colour family (models.PaintTotals) with every
write; `check` recounts the paints and names each total that differs, and `check(fix=True)`
puts the recount in their place, one row per group.
"""

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import case, delete, func, insert, literal, select, text, type_coerce, union_all

from ..extensions import db
from ..models import MoneyTotal, Paint, PaintTotals
from . import levels, transactions

logger = logging.getLogger(__name__)
FIELDS = ("paints", "units", "value", "in_stock", "low_stock", "out_of_stock")


@dataclass(frozen=True)
class Drift:
    """One running total that differs from the paints: its group, field and both values."""

    brand: str
    color_family: str | None
    field: str
    stored: int | Decimal
    actual: int | Decimal


def check(*, fix: bool = False) -> list[Drift]:
    """Return every total that differs from a recount; with `fix`, replace them by it.

    The comparison is one statement, so it sees the paints and the totals at one moment
    without stopping writers. Fixing holds off every write of paints (PostgreSQL: SHARE
    lock; SQLite: the write lock its transactions take) from the recount to the commit,
    so no write's change to the totals is lost.
    """
    if fix and db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("LOCK TABLE paints IN SHARE MODE"))
    drifts = _compare()
    if fix and drifts:
        db.session.execute(delete(PaintTotals))
        db.session.execute(
            insert(PaintTotals).from_select(["brand", "color_family", *FIELDS], _recount())
        )
        transactions.commit()
        logger.warning("fixed %d drifted figure(s)", len(drifts))
    else:
        db.session.rollback()
    return drifts


def _recount() -> Any:
    """Return a SELECT of each group's figures counted from the paints."""
    family = func.coalesce(Paint.color_family, "")
    return select(
        Paint.brand,
        family,
        func.count(),
        func.coalesce(func.sum(Paint.stock), 0),
        func.coalesce(func.sum(Paint.price * Paint.stock), 0),
        func.count().filter(levels.ABOVE_LEVEL),
        func.count().filter(levels.LOW),
        func.count().filter(levels.OUT),
    ).group_by(Paint.brand, family)


def _compare() -> list[Drift]:
    """Return the drifts, from the recount and the totals side by side in one statement."""
    actual = _recount().add_columns(literal(0).label("stored"))
    stored = select(
        PaintTotals.brand,
        PaintTotals.color_family,
        *(getattr(PaintTotals, name) for name in FIELDS),
        literal(1).label("stored"),
    )
    both = union_all(actual, stored).subquery()
    brand, family, *values, is_stored = both.c

    def side(flag: int) -> list[Any]:
        sums = [func.coalesce(func.sum(case((is_stored == flag, value))), 0) for value in values]
        return [
            type_coerce(total, MoneyTotal()) if name == "value" else total
            for name, total in zip(FIELDS, sums, strict=True)
        ]

    stored_side, actual_side = side(1), side(0)
    query = (
        select(brand, family, *stored_side, *actual_side)
        .group_by(brand, family)
        .order_by(brand, family)
    )
    drifts = []
    for row in db.session.execute(query):
        for index, name in enumerate(FIELDS):
            was, counted = row[2 + index], row[2 + len(FIELDS) + index]
            if name != "value":
                was, counted = int(was), int(counted)
            if was != counted:
                drifts.append(Drift(row[0], row[1] or None, name, was, counted))
    return drifts
