"""Inventory figures: counts, units and value, overall and broken down."""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, literal, select, type_coerce, union_all

from ..extensions import db
from ..models import MoneyTotal, PaintTotals

# What each row of the figures' statement is: the whole, a brand or a family.
ALL, BRAND, FAMILY = "all", "brand", "family"


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
    return _figures(db.session.execute(FIGURES).all())


def _groups() -> Any:
    """Return each brand and family's figures, summed over its rows, as a CTE.

    Grouped as the table's index is sorted, so the table is read once, through that index:
    after a bulk load its file holds many empty pages (row versions a VACUUM freed), which
    reading it whole, once per part below, would visit three times.
    """
    total = PaintTotals
    return (
        select(
            total.brand,
            total.color_family,
            func.sum(total.paints).label("paints"),
            func.sum(total.units).label("units"),
            func.sum(total.value).label("value"),
            func.sum(total.in_stock).label("in_stock"),
            func.sum(total.low_stock).label("low_stock"),
            func.sum(total.out_of_stock).label("out_of_stock"),
        )
        .group_by(total.brand, total.color_family)
        .cte("groups")
    )


def _sums(groups: Any, *keys: Any) -> Any:
    """Return a SELECT of the groups' sums, grouped by `keys` (all groups without)."""
    return select(
        *keys,
        func.coalesce(func.sum(groups.c.paints), 0),
        func.coalesce(func.sum(groups.c.units), 0),
        type_coerce(func.coalesce(func.sum(groups.c.value), 0), MoneyTotal()),
        func.coalesce(func.sum(groups.c.in_stock), 0),
        func.coalesce(func.sum(groups.c.low_stock), 0),
        func.coalesce(func.sum(groups.c.out_of_stock), 0),
    )


def _per(groups: Any, key: str, part: str) -> Any:
    # A group whose paints are all gone is left out (its rows may not be folded away yet).
    totals = _sums(groups, literal(part), groups.c[key]).group_by(groups.c[key])
    return totals.having(func.sum(groups.c.paints) > 0)


def _statement() -> Any:
    groups = _groups()
    return union_all(
        _sums(groups, literal(ALL), literal("")),
        _per(groups, "brand", BRAND),
        _per(groups, "color_family", FAMILY),
    )


# The whole, then each brand's and each family's figures, summed by the database in one
# statement: a few dozen rows to read back, whatever the number of groups and their slots.
# Built once: its compiled form is cached by SQLAlchemy, and building it costs a request.
FIGURES = _statement()


def _figures(rows: Sequence[Any]) -> InventoryStats:
    parts: dict[str, list[Breakdown]] = {BRAND: [], FAMILY: []}
    whole: Any = None
    for part, key, paints, units, value, above, low, out in rows:
        if part == ALL:
            whole = (int(paints), int(units), value, int(above), int(low), int(out))
        else:
            # A paint without a family counts under '', the unset family.
            parts[part].append(Breakdown(key or None, int(paints), int(units)))
    paints, units, value, above, low, out = whole
    return InventoryStats(
        paints=paints,
        units=units,
        value=value,
        in_stock=above,
        low_stock=low,
        out_of_stock=out,
        by_brand=_ranked(parts[BRAND]),
        by_color_family=_ranked(parts[FAMILY]),
    )


def _ranked(rows: list[Breakdown]) -> list[Breakdown]:
    """Most paints first, then by name (None, the unset family, last)."""
    return sorted(rows, key=lambda row: (-row.paints, row.key is None, row.key or ""))
