"""Stock adjustments and their history."""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import BigInteger, cast, func, select, update

from ..extensions import db
from ..models import Paint, StockMovement, utcnow
from . import cache
from .errors import InsufficientStock, ValidationError
from .listing import Page
from .paints import get_paint, get_paint_record
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


def adjust_stock(
    paint_id: int, delta: int, reason: str, user_id: int | None, *, kind: str = "adjustment"
) -> StockMovement:
    """Move the paint's stock by `delta` in one conditional UPDATE and record the movement.

    The database does the arithmetic, so concurrent adjustments never lose each other,
    and the WHERE clause refuses any change that would take stock below 0.
    """
    # Computed in 64 bits so that a huge delta is refused instead of overflowing.
    new_stock = cast(Paint.stock, BigInteger) + delta
    statement = (
        update(Paint)
        .where(Paint.id == paint_id, new_stock >= 0, new_stock <= MAX_STOCK)
        .values(stock=Paint.stock + delta, version=Paint.version + 1, updated_at=utcnow())
        .returning(Paint.stock)
        .execution_options(synchronize_session=False)
    )
    stock_after = db.session.execute(statement).scalar_one_or_none()
    if stock_after is None:
        db.session.rollback()
        current = get_paint(paint_id).stock
        bound = "below 0" if current + delta < 0 else f"above {MAX_STOCK}"
        raise InsufficientStock(
            f"Adjusting by {delta} would take stock of paint {paint_id} {bound} "
            f"(it is {current}); nothing was changed.",
            {"delta": f"would take stock {bound}; current stock is {current}."},
            current_stock=current,
        )
    movement = StockMovement(
        paint_id=paint_id,
        delta=delta,
        stock_after=stock_after,
        kind=kind,
        reason=reason,
        user_id=user_id,
    )
    db.session.add(movement)
    # Committing also expires any loaded Paint, so it re-reads the new stock.
    db.session.commit()
    cache.paints_changed(paint_id)
    return movement


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
