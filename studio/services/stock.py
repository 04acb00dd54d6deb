"""Stock adjustments and their history."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, cast, func, select, update

from ..extensions import db
from ..models import Paint, StockMovement, utcnow
from . import cache_scopes, history, transactions
from .errors import InsufficientStock, ValidationError
from .history import Actor
from .listing import Page
from .paints import PAINT_COLUMNS, PaintRecord, get_paint, get_paint_record
from .validation import MAX_STOCK, FieldError, clean_int, clean_text

ADJUSTMENT_FIELDS = ("delta", "reason")


def validate_adjustment(data: Mapping[str, Any], *, from_text: bool = False) -> tuple[int, str]:
    """Return (delta, reason) from submitted fields, or raise ValidationError."""
    errors = {field: "is not a known field." for field in data if field not in ADJUSTMENT_FIELDS}
    delta, reason = 0, ""
    try:
        delta = clean_int(
            data.get("delta"), minimum=-MAX_STOCK, maximum=MAX_STOCK, from_text=from_text
        )
        if delta == 0:
            raise FieldError("must not be 0.")
    except FieldError as exc:
        errors["delta"] = str(exc)
    try:
        reason = clean_text(data.get("reason"), max_length=200, required=True) or ""
    except FieldError as exc:
        errors["reason"] = str(exc)
    if errors:
        raise ValidationError(errors)
    return delta, reason


@dataclass(frozen=True)
class MovementRecord:
    """A stock movement as it was saved, safe to answer with after the commit."""

    id: int
    paint_id: int
    delta: int
    stock_after: int
    kind: str
    reason: str | None
    username: str | None
    created_at: datetime


@dataclass(frozen=True)
class StockChange:
    """The paint after an adjustment, and the movement that recorded it."""

    paint: PaintRecord
    movement: MovementRecord


def adjust_stock(
    paint_id: int, delta: int, reason: str, actor: Actor | None, *, kind: str = "adjustment"
) -> StockChange:
    """Move the paint's stock by `delta` in one conditional UPDATE; record movement and entry.

    The database does the arithmetic, so concurrent adjustments never lose each other,
    and the WHERE clause refuses any change that would take stock below 0. The answer is
    built from what the UPDATE returned, before the commit.
    """
    # Computed in 64 bits so that a huge delta is refused instead of overflowing.
    new_stock = cast(Paint.stock, BigInteger) + delta
    statement = (
        update(Paint)
        .where(Paint.id == paint_id, new_stock >= 0, new_stock <= MAX_STOCK)
        .values(stock=Paint.stock + delta, version=Paint.version + 1, updated_at=utcnow())
        .returning(*PAINT_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    row = db.session.execute(statement).one_or_none()
    if row is None:
        db.session.rollback()
        raise _refusal(paint_id, delta)
    paint = PaintRecord(**row._asdict())
    movement = StockMovement(
        paint_id=paint_id,
        delta=delta,
        stock_after=paint.stock,
        kind=kind,
        reason=reason,
        user_id=actor.user_id if actor else None,
    )
    db.session.add(movement)
    db.session.flush()
    history.record(
        "stock", actor, vars(paint), {"stock": [paint.stock - delta, paint.stock]}, reason
    )
    saved = MovementRecord(
        id=movement.id,
        paint_id=paint_id,
        delta=delta,
        stock_after=paint.stock,
        kind=kind,
        reason=reason,
        # The actor's name, not movement.username: that loads the user in one more query.
        username=actor.username if actor else None,
        created_at=movement.created_at,
    )
    # Stock alone moved: the listings of the paint's values and stock states, not others.
    before = {**vars(paint), "stock": paint.stock - delta}
    transactions.commit(cache_scopes.paint_written(paint_id, before, vars(paint)))
    return StockChange(paint, saved)


def _refusal(paint_id: int, delta: int) -> InsufficientStock:
    current = get_paint(paint_id).stock
    bound = "below 0" if current + delta < 0 else f"above {MAX_STOCK}"
    return InsufficientStock(
        f"Adjusting by {delta} would take stock of paint {paint_id} {bound} "
        f"(it is {current}); nothing was changed.",
        {"delta": f"would take stock {bound}; current stock is {current}."},
        current_stock=current,
    )


def list_movements(paint_id: int, page: int, per_page: int) -> Page:
    """Return a page of the paint's stock history, newest first."""
    get_paint_record(paint_id)
    where = StockMovement.paint_id == paint_id
    total = db.session.scalar(select(func.count(StockMovement.id)).where(where)) or 0
    query = (
        select(StockMovement)
        .where(where)
        .order_by(StockMovement.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    items = db.session.scalars(query).all()
    return Page(items, total, page, per_page, has_next=page * per_page < total)
