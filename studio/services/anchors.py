"""Page anchors: deep numbered pages of the full listing start from a remembered paint.

Page 20,000 of the listing by name skips 399,980 entries of the name index. Every
ANCHOR_EVERY-th paint of each listing order over all paints is kept in
paint_page_anchors (migration 0016), so such a page seeks the index from the nearest
anchor before it (keyset) and skips fewer than ANCHOR_EVERY entries.

An anchor is right only while its order has not changed: PostgreSQL triggers count each
write that inserts or deletes paints or updates a sort column, in the writer's own
transaction (paint_order_changes). The page's one SQL statement, one snapshot, takes the
anchor only if the count is the one it was built at, and otherwise reads the page by
offset as before, so a page is always the rows an offset would give. A page that found
no anchor asks for a rebuild, which a thread of this worker runs (never the request),
one builder at a time across workers and instances (an advisory lock), at most once per
REBUILD_SECONDS per worker. Filtered listings, searches and SQLite never use anchors.
"""

import logging
import threading
import time
from typing import Any

from flask import Flask, current_app
from sqlalchemy import (
    Select,
    exists,
    func,
    insert,
    literal,
    select,
    tuple_,
    union_all,
)

from ..extensions import db
from ..models import Paint, PaintOrderChange, PaintPageAnchor
from . import transactions
from .paints import PAINT_COLUMNS

logger = logging.getLogger(__name__)

ANCHOR_EVERY = 1000
# A worker asks for a rebuild at most this often: stock changes make the stock orders'
# anchors stale on every sale, and rebuilding them for each deep page would cost more
# than the pages save.
REBUILD_SECONDS = 30.0
# pg_try_advisory_xact_lock's key of the builder: one at a time across every instance.
BUILDER_LOCK = 0x5A1A_0C40
SORTS = tuple(
    f"{sign}{column}"
    for column in ("name", "brand", "price", "stock", "created_at")
    for sign in ("", "-")
)

_rebuild_guard = threading.Lock()
_last_request = {"at": float("-inf")}


def usable(paint_filter: Any, where: list[Any], dialect: str) -> bool:
    """True when the page may start from an anchor: the full listing, deep, by number."""
    offset = (paint_filter.page - 1) * paint_filter.per_page
    return (
        dialect == "postgresql"
        and not where
        and paint_filter.after is None
        and offset >= ANCHOR_EVERY
    )


def changes_of(column: str) -> Any:
    """The change count of one sort column, as a scalar subquery (0 before any write)."""
    return (
        select(func.coalesce(func.sum(PaintOrderChange.changes), 0))
        .where(PaintOrderChange.sort_column == column)
        .scalar_subquery()
    )


def page_statement(paint_filter: Any, order: list[Any]) -> Select:
    """Select the page's paints and, with each, whether it was found from an anchor.

    One statement: the newest anchor at or before the page's offset whose change count is
    still the order's, then either the index read from that anchor's key, skipping the
    rest of the offset, or (no such anchor) the index read from its start, skipping the
    whole offset. The database runs only the half whose condition holds.
    """
    column_name = paint_filter.sort.removeprefix("-")
    column = paint_filter.column
    offset = (paint_filter.page - 1) * paint_filter.per_page
    limit = paint_filter.per_page + 1
    anchor = (
        select(
            PaintPageAnchor.position,
            getattr(PaintPageAnchor, column_name).label("key"),
            PaintPageAnchor.paint_id,
        )
        .where(
            PaintPageAnchor.sort == paint_filter.sort,
            PaintPageAnchor.position <= offset,
            PaintPageAnchor.changes_at_build == changes_of(column_name),
        )
        .order_by(PaintPageAnchor.position.desc())
        .limit(1)
        .cte("anchor")
    )
    key = tuple_(
        select(anchor.c.key).scalar_subquery(), select(anchor.c.paint_id).scalar_subquery()
    )
    seek = (
        tuple_(column, Paint.id) < key
        if paint_filter.descending
        else tuple_(column, Paint.id) > key
    )
    skip = select(literal(offset) - anchor.c.position).scalar_subquery()
    from_anchor = (
        select(Paint.id.label("id"), literal(True).label("anchored"))
        .where(seek)
        .order_by(*order)
        .offset(skip)
        .limit(limit)
        .subquery()
    )
    from_start = (
        select(Paint.id.label("id"), literal(False).label("anchored"))
        .where(~exists(select(anchor.c.position)))
        .order_by(*order)
        .offset(offset)
        .limit(limit)
        .subquery()
    )
    ids = union_all(select(from_anchor), select(from_start)).subquery("ids")
    return select(*PAINT_COLUMNS, ids.c.anchored).join(ids, Paint.id == ids.c.id).order_by(*order)


def rebuild(sorts: tuple[str, ...] = SORTS) -> int | None:
    """Rebuild the stale anchors of these orders in one transaction; how many were written.

    None when another builder holds the lock (or on SQLite). Each order is one statement:
    its index read in order with row numbers, every ANCHOR_EVERY-th kept with the order's
    change count of the same snapshot, so an anchor and its count always agree.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    if not db.session.scalar(select(func.pg_try_advisory_xact_lock(BUILDER_LOCK))):
        db.session.rollback()
        return None
    written = 0
    for sort in sorts:
        column_name = sort.removeprefix("-")
        if _fresh(sort, column_name):
            continue
        db.session.execute(PaintPageAnchor.__table__.delete().where(PaintPageAnchor.sort == sort))
        written += db.session.execute(_build_statement(sort, column_name)).rowcount
    transactions.commit()
    logger.info("page anchors rebuilt: %d written", written)
    return written


def _fresh(sort: str, column_name: str) -> bool:
    held = db.session.scalar(
        select(PaintPageAnchor.changes_at_build).where(PaintPageAnchor.sort == sort).limit(1)
    )
    return held is not None and held == db.session.scalar(select(changes_of(column_name)))


def _build_statement(sort: str, column_name: str) -> Any:
    column = getattr(Paint, column_name)
    if sort.startswith("-"):
        order = [column.desc(), Paint.id.desc()]
    else:
        order = [column.asc(), Paint.id.asc()]
    # The window reads the order's index alone; only the anchors' rows are read in full.
    numbered = select(
        Paint.id.label("id"), func.row_number().over(order_by=order).label("position")
    ).subquery("numbered")
    chosen = (
        select(
            literal(sort),
            numbered.c.position,
            Paint.id,
            Paint.name,
            Paint.brand,
            Paint.price,
            Paint.stock,
            Paint.created_at,
            changes_of(column_name),
        )
        .join(numbered, Paint.id == numbered.c.id)
        .where(numbered.c.position % ANCHOR_EVERY == 0)
    )
    return insert(PaintPageAnchor).from_select(
        [
            "sort",
            "position",
            "paint_id",
            "name",
            "brand",
            "price",
            "stock",
            "created_at",
            "changes_at_build",
        ],
        chosen,
    )


def request_rebuild() -> bool:
    """Start a rebuild in a thread of this worker, unless one ran lately; True if started."""
    if not current_app.config.get("PAGE_ANCHOR_REBUILDS", True):
        return False
    if not _rebuild_guard.acquire(blocking=False):
        return False
    now = time.monotonic()
    if now - _last_request["at"] < REBUILD_SECONDS:
        _rebuild_guard.release()
        return False
    _last_request["at"] = now
    threading.Thread(
        target=_rebuild_in_thread,
        args=(current_app._get_current_object(),),
        name="studio-page-anchors",
        daemon=True,
    ).start()
    return True


def _rebuild_in_thread(app: Flask) -> None:
    try:
        with app.app_context():
            try:
                rebuild()
            except Exception as exc:  # a page never depends on it: it reads by offset
                logger.warning("page anchors not rebuilt: %s", exc, exc_info=True)
                db.session.rollback()
            finally:
                db.session.remove()
    finally:
        _rebuild_guard.release()
