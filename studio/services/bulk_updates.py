"""Price lists and deliveries through the import: what a staged file would change, and doing it.

An upload in mode "update" changes existing paints (found by brand and code) to the
values its file has; an empty cell, or a column the file lacks, changes nothing. One in
mode "receive" adds each row's quantity to its paint's stock and records a movement of
kind `delivery` with the upload's reference as its reason. A row whose brand and code the
inventory does not have is skipped, and the preview lists it.

The check notes each row's paint and that paint's version. The preview compares the file
with the paints as they are now; the confirmation refuses an update if any of its paints
changed since the check (what the admin saw is no longer what would change), whereas a
delivery is added to the stock as it is then, as adjust_stock adds (stock only goes up).
Every write is one set-based statement per step over the staged rows, never a row at a time.
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    String,
    and_,
    case,
    cast,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    type_coerce,
    update,
)

from ..extensions import db
from ..models import ImportRow, Money, Paint, StockMovement, utcnow
from . import history
from .errors import Conflict
from .history import Actor
from .validation import MAX_STOCK, PAINT_FIELDS

logger = logging.getLogger(__name__)
KEY_FIELDS = ("brand", "color_code")
# What an update may change: every field of a paint but the two that find it.
UPDATE_FIELDS = tuple(name for name in PAINT_FIELDS if name not in KEY_FIELDS)
PREVIEW_PAGE_ROWS = 100
UNKNOWN_SHOWN = 50
CHANGED_SHOWN = 10
CORRECTION_REASON = "Stock corrected by import"

rows = ImportRow.__table__
paints = Paint.__table__


@dataclass(frozen=True)
class RowPreview:
    """One row of the file: its paint (None if unknown) and each field's old and new value."""

    position: int
    brand: str
    color_code: str
    paint_id: int | None
    changes: Sequence[tuple[str, Any, Any]]
    quantity: int | None = None
    unit_cost: Decimal | None = None

    @property
    def status(self) -> str:
        if self.paint_id is None:
            return "unknown"
        return "changed" if self.changes else "unchanged"


@dataclass(frozen=True)
class Totals:
    """What the whole file would do; values are stock × price over the known paints."""

    rows: int
    changed: int
    unknown: int
    units: int
    old_value: Decimal
    new_value: Decimal
    delivery_cost: Decimal | None
    # Rows whose paint the delivery would take past MAX_STOCK: the confirmation refuses them.
    over_limit: int = 0

    @property
    def unchanged(self) -> int:
        return self.rows - self.changed - self.unknown

    @property
    def value_change(self) -> Decimal:
        return self.new_value - self.old_value


@dataclass(frozen=True)
class Preview:
    """A page of the file's rows as they would change, its unknown rows, and the totals."""

    mode: str
    totals: Totals
    rows: Sequence[RowPreview]
    page: int
    pages: int
    unknown: Sequence[RowPreview] = field(default_factory=list)


@dataclass(frozen=True)
class PaintChange:
    """What the import changed in one paint: (field, old, new) for each changed field."""

    paint_id: int
    fields: Sequence[tuple[str, Any, Any]]


def match_paints(upload_id: int) -> None:
    """Note, on each staged row, the paint its brand and code find and that paint's version."""
    db.session.execute(
        update(rows)
        .where(
            rows.c.upload_id == upload_id,
            paints.c.brand == rows.c.brand,
            paints.c.color_code == rows.c.color_code,
        )
        .values(paint_id=paints.c.id, paint_version=paints.c.version)
    )


def preview(upload_id: int, mode: str, page: int = 1) -> Preview:
    """Return what confirming the upload would change, compared with the paints as they are."""
    totals = _totals(upload_id, mode)
    pages = max(1, -(-totals.rows // PREVIEW_PAGE_ROWS))
    page = min(max(page, 1), pages)
    start = (page - 1) * PREVIEW_PAGE_ROWS
    on_page = rows.c.position.between(start + 1, start + PREVIEW_PAGE_ROWS)
    shown = _row_previews(upload_id, mode, on_page)
    unknown = _row_previews(upload_id, mode, paints.c.id.is_(None), limit=UNKNOWN_SHOWN)
    return Preview(mode, totals, shown, page, pages, unknown)


def _joined() -> Any:
    return rows.outerjoin(paints, paints.c.id == rows.c.paint_id)


def _changed(name: str) -> ColumnElement[bool]:
    return and_(rows.c[name].is_not(None), rows.c[name].is_distinct_from(paints.c[name]))


def _any_change(mode: str) -> ColumnElement[bool]:
    if mode == "receive":
        return paints.c.id.is_not(None)
    return and_(paints.c.id.is_not(None), or_(*(_changed(name) for name in UPDATE_FIELDS)))


def _new_stock_and_price(mode: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    if mode == "receive":
        return paints.c.stock + rows.c.quantity, paints.c.price
    return (
        func.coalesce(rows.c.stock, paints.c.stock),
        func.coalesce(rows.c.price, paints.c.price),
    )


def _money_sum(value: ColumnElement[Any]) -> ColumnElement[Decimal]:
    # Money is whole cents on SQLite: the sum is read back through the same type.
    return type_coerce(func.coalesce(func.sum(value), 0), Money())


def _totals(upload_id: int, mode: str) -> Totals:
    known = paints.c.id.is_not(None)
    new_stock, new_price = _new_stock_and_price(mode)
    counted = case((known, 1), else_=0)
    result = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((_any_change(mode), 1), else_=0)), 0),
            func.count() - func.coalesce(func.sum(counted), 0),
            func.coalesce(func.sum(case((known, rows.c.quantity), else_=0)), 0),
            _money_sum(case((known, paints.c.stock * paints.c.price), else_=None)),
            _money_sum(case((known, new_stock * new_price), else_=None)),
            _money_sum(case((known, rows.c.quantity * rows.c.unit_cost), else_=None)),
            func.coalesce(func.sum(case((and_(known, _past_limit(mode)), 1), else_=0)), 0),
        )
        .select_from(_joined())
        .where(rows.c.upload_id == upload_id)
    ).one()
    count, changed, unknown, units, old_value, new_value, cost, over_limit = result
    return Totals(
        rows=count,
        changed=changed,
        unknown=unknown,
        units=units if mode == "receive" else 0,
        old_value=old_value,
        new_value=new_value,
        delivery_cost=cost if mode == "receive" else None,
        over_limit=over_limit,
    )


def _past_limit(mode: str) -> ColumnElement[bool]:
    if mode != "receive":
        return false()
    return cast(paints.c.stock, BigInteger) + rows.c.quantity > MAX_STOCK


def _row_previews(
    upload_id: int, mode: str, where: ColumnElement[bool], limit: int | None = None
) -> list[RowPreview]:
    names = ("stock",) if mode == "receive" else UPDATE_FIELDS
    query = (
        select(
            rows.c.position,
            rows.c.brand,
            rows.c.color_code,
            rows.c.quantity,
            rows.c.unit_cost,
            paints.c.id,
            *(rows.c[name].label(f"new_{name}") for name in names),
            *(paints.c[name].label(f"old_{name}") for name in names),
        )
        .select_from(_joined())
        .where(rows.c.upload_id == upload_id, where)
        .order_by(rows.c.position)
        .limit(limit)
    )
    return [_row_preview(row, mode, names) for row in db.session.execute(query).mappings()]


def _row_preview(row: Mapping[str, Any], mode: str, names: Sequence[str]) -> RowPreview:
    changes: list[tuple[str, Any, Any]] = []
    if row["id"] is not None:
        if mode == "receive":
            changes.append(("stock", row["old_stock"], row["old_stock"] + row["quantity"]))
        else:
            changes.extend(_field_changes(row, names))
    return RowPreview(
        position=row["position"],
        brand=row["brand"],
        color_code=row["color_code"],
        paint_id=row["id"],
        changes=changes,
        quantity=row["quantity"],
        unit_cost=row["unit_cost"],
    )


def _field_changes(row: Mapping[str, Any], names: Sequence[str]) -> list[tuple[str, Any, Any]]:
    return [
        (name, row[f"old_{name}"], row[f"new_{name}"])
        for name in names
        if row[f"new_{name}"] is not None and row[f"new_{name}"] != row[f"old_{name}"]
    ]


def refuse_changed_paints(upload_id: int, mode: str) -> None:
    """Refuse the confirmation if paints of the file changed (or went) since its check.

    An update is refused for any change since, a stock movement included, since its
    preview showed values that are no longer there; a delivery only for a paint deleted.
    """
    gone = paints.c.id.is_(None)
    stale = gone if mode == "receive" else or_(gone, paints.c.version != rows.c.paint_version)
    found = db.session.execute(
        select(rows.c.position, rows.c.brand, rows.c.color_code, gone.label("gone"))
        .select_from(_joined())
        .where(rows.c.upload_id == upload_id, rows.c.paint_id.is_not(None), stale)
        .order_by(rows.c.position)
        .limit(CHANGED_SHOWN + 1)
    ).all()
    if found:
        db.session.rollback()
        raise _changed_since_check(found)


def _changed_since_check(found: Sequence[Any]) -> Conflict:
    named = "; ".join(
        f"row {position:,}: {brand} {code}{' (deleted)' if gone else ''}"
        for position, brand, code, gone in found[:CHANGED_SHOWN]
    )
    more = " and more" if len(found) > CHANGED_SHOWN else ""
    return Conflict(
        "Nothing was changed: since the file was checked, another admin changed or deleted "
        f"paints it names ({named}{more}). Check the file again to see what it would change now.",
        {"file": "names paints that changed since it was checked."},
    )


def apply_update(
    upload_id: int, actor: Actor | None, note: str, start: int, stop: int
) -> list[int]:
    """Write rows start+1..stop of an update; return the ids of the paints changed.

    One UPDATE ... FROM the staged rows, on the condition that each paint still has the
    version the check saw: a concurrent edit makes the count fall short, and the import
    is refused as a whole.
    """
    chunk = and_(rows.c.upload_id == upload_id, rows.c.position.between(start + 1, stop))
    changes = _update_changes(chunk)
    if not changes:
        return []
    now = utcnow()
    written = db.session.execute(
        update(paints)
        .where(
            chunk,
            rows.c.paint_id == paints.c.id,
            paints.c.version == rows.c.paint_version,
            _any_change("update"),
        )
        .values(
            **{name: func.coalesce(rows.c[name], paints.c[name]) for name in UPDATE_FIELDS},
            version=paints.c.version + 1,
            updated_at=now,
        )
    ).rowcount
    if written != len(changes):
        db.session.rollback()
        raise Conflict(
            "Nothing was changed: another admin changed paints of this file while it was "
            "being applied. Check the file again to see what it would change now.",
            {"file": "names paints that changed while it was applied."},
        )
    _record_stock_corrections(changes, actor.user_id if actor else None, now)
    record_changes(changes, "import", actor, note)
    return [change.paint_id for change in changes]


def _update_changes(chunk: ColumnElement[bool]) -> list[PaintChange]:
    query = (
        select(
            paints.c.id,
            *(rows.c[name].label(f"new_{name}") for name in UPDATE_FIELDS),
            *(paints.c[name].label(f"old_{name}") for name in UPDATE_FIELDS),
        )
        .select_from(_joined())
        .where(chunk, _any_change("update"))
        .order_by(rows.c.position)
    )
    return [
        PaintChange(row["id"], _field_changes(row, UPDATE_FIELDS))
        for row in db.session.execute(query).mappings()
    ]


def _record_stock_corrections(
    changes: Sequence[PaintChange], user_id: int | None, now: Any
) -> None:
    """Record a changed stock as an edit does: a movement of kind `correction`."""
    movements = [
        {
            "paint_id": change.paint_id,
            "delta": new - old,
            "stock_after": new,
            "kind": "correction",
            "reason": CORRECTION_REASON,
            "user_id": user_id,
            "created_at": now,
        }
        for change in changes
        for name, old, new in change.fields
        if name == "stock"
    ]
    if movements:
        db.session.execute(insert(StockMovement.__table__), movements)


def apply_delivery(
    upload_id: int, actor: Actor | None, note: str, reference: str, start: int, stop: int
) -> tuple[list[int], int]:
    """Add rows start+1..stop of a delivery to the stock; return (paint ids, units) received.

    As adjust_stock does, one conditional UPDATE does the arithmetic, so a sale at the
    same moment is never lost, and refuses any paint whose stock would pass MAX_STOCK;
    if fewer paints took their quantity than the file names, nothing is received.
    """
    chunk = and_(rows.c.upload_id == upload_id, rows.c.position.between(start + 1, stop))
    quantities = dict(
        db.session.execute(
            select(rows.c.paint_id, rows.c.quantity).where(chunk, rows.c.paint_id.is_not(None))
        ).all()
    )
    if not quantities:
        return [], 0
    now = utcnow()
    received = db.session.execute(
        update(paints)
        .where(
            chunk,
            rows.c.paint_id == paints.c.id,
            cast(paints.c.stock, BigInteger) + rows.c.quantity <= MAX_STOCK,
        )
        .values(
            stock=paints.c.stock + rows.c.quantity, version=paints.c.version + 1, updated_at=now
        )
        .returning(paints.c.id, paints.c.stock)
    ).all()
    if len(received) != len(quantities):
        db.session.rollback()
        raise _delivery_refused(upload_id)
    _insert_deliveries(chunk, actor.user_id if actor else None, reference, now)
    changes = [
        PaintChange(paint_id, [("stock", stock - quantities[paint_id], stock)])
        for paint_id, stock in received
    ]
    record_changes(changes, "stock", actor, f"Delivery {reference} ({note})")
    return [paint_id for paint_id, _ in received], sum(quantities.values())


def _insert_deliveries(
    chunk: ColumnElement[bool], user_id: int | None, reference: str, now: Any
) -> None:
    """Add one `delivery` movement per paint received, its stock after read from the paint."""
    db.session.execute(
        insert(StockMovement.__table__).from_select(
            ["paint_id", "delta", "stock_after", "kind", "reason", "user_id", "created_at"],
            select(
                paints.c.id,
                rows.c.quantity,
                paints.c.stock,
                literal("delivery", String),
                literal(reference, String),
                literal(user_id, Integer),
                literal(now, DateTime(timezone=True)),
            )
            .select_from(rows.join(paints, paints.c.id == rows.c.paint_id))
            .where(chunk)
            .order_by(rows.c.position),
        )
    )


def _delivery_refused(upload_id: int) -> Conflict:
    over = db.session.execute(
        select(rows.c.position, rows.c.brand, rows.c.color_code, paints.c.stock)
        .select_from(_joined())
        .where(
            rows.c.upload_id == upload_id,
            or_(
                and_(rows.c.paint_id.is_not(None), paints.c.id.is_(None)),
                cast(paints.c.stock, BigInteger) + rows.c.quantity > MAX_STOCK,
            ),
        )
        .order_by(rows.c.position)
        .limit(CHANGED_SHOWN)
    ).all()
    db.session.rollback()
    named = "; ".join(
        f"row {position:,}: {brand} {code}"
        + (" (deleted)" if stock is None else f" (stock {stock:,})")
        for position, brand, code, stock in over
    )
    return Conflict(
        f"Nothing was received: stock may not pass {MAX_STOCK:,}, and every paint named must "
        f"still exist ({named or 'a paint changed meanwhile'}). Correct the file and check "
        "it again.",
        {"file": "has rows that cannot be received."},
    )


def record_changes(
    changes: Sequence[PaintChange], kind: str, actor: Actor | None, note: str
) -> None:
    """Write, in the import's transaction, one history entry per paint it changed."""
    if not changes:
        return
    named = {
        row.id: row._asdict()
        for row in db.session.execute(
            select(paints.c.id, paints.c.brand, paints.c.name, paints.c.color_code).where(
                paints.c.id.in_([change.paint_id for change in changes])
            )
        )
    }
    history.record_many(
        [
            history.entry(
                kind,
                actor,
                named.get(change.paint_id, {"id": change.paint_id}),
                {
                    name: [history.stored(old), history.stored(new)]
                    for name, old, new in change.fields
                },
                note,
            )
            for change in changes
        ]
    )
