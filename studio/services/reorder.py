"""The reorder list: every paint at or below its reorder level, by brand, with what to order.

A brand stands for its supplier. The suggested quantity is the paint's reorder_quantity
when it has one, else enough to bring its stock back above its level (level - stock + 1).
The list is read from the partial index of paints at or below their level, in its order
(brand, name, id), a page at a time; the CSV for ordering is read a batch at a time.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, tuple_

from ..extensions import db
from ..models import Paint
from . import cache_scopes, cached_reads, levels
from .errors import ValidationError
from .listing import EXPORT_BATCH, MAX_PER_PAGE, Page, parse_page
from .paints import PaintRecord
from .validation import FieldError, clean_text

ORDER = (Paint.brand, Paint.name, Paint.id)
PER_PAGE = MAX_PER_PAGE


@dataclass(frozen=True)
class ReorderLine:
    """A paint to order, and how many."""

    paint: PaintRecord
    suggested_quantity: int


@dataclass(frozen=True)
class BrandTotal:
    """One brand's (supplier's) part of the list: paints to order and units suggested."""

    brand: str
    paints: int
    units: int


@dataclass(frozen=True)
class ReorderRequest:
    """Which part of the reorder list is asked for: one brand or all, and which page."""

    brand: str | None = None
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "ReorderRequest":
        """Return the request described by query arguments, or raise ValidationError."""
        errors: dict[str, str] = {}
        brand = None
        try:
            brand = clean_text(args.get("brand"), max_length=100)
        except FieldError as exc:
            errors["brand"] = str(exc)
        page, per_page = parse_page({**args, "per_page": args.get("per_page") or PER_PAGE}, errors)
        if errors:
            raise ValidationError(errors)
        return cls(brand, page, per_page)

    def conditions(self) -> list[ColumnElement[bool]]:
        clauses = [levels.AT_OR_BELOW_LEVEL]
        if self.brand is not None:
            clauses.append(Paint.brand == self.brand)
        return clauses


def reorder_page(request: ReorderRequest) -> Page:
    """Return a page of the reorder list, in brand and name order (cached until a write)."""
    scope = cache_scopes.listing_scope(brand=request.brand, stock=levels.AT_OR_BELOW)
    return cached_reads.remember_in_generation(
        "reorder", request, "LIST_CACHE_TTL", lambda: _load_page(request), scope
    )


def _load_page(request: ReorderRequest) -> Page:
    where = request.conditions()
    total = sum(brand.paints for brand in brand_totals(request.brand))
    offset = (request.page - 1) * request.per_page
    # The page's ids come from the partial index alone; only its rows are read.
    ids = (
        select(Paint.id)
        .where(*where)
        .order_by(*ORDER)
        .offset(offset)
        .limit(request.per_page + 1)
        .subquery()
    )
    rows = db.session.scalars(select(Paint).join(ids, Paint.id == ids.c.id).order_by(*ORDER))
    lines = [_line(paint) for paint in rows]
    has_next = len(lines) > request.per_page
    return Page(tuple(lines[: request.per_page]), total, request.page, request.per_page, has_next)


def brand_totals(brand: str | None = None) -> list[BrandTotal]:
    """Return each brand's paints to order and units suggested, by brand (cached)."""
    scope = cache_scopes.listing_scope(brand=brand, stock=levels.AT_OR_BELOW)
    return cached_reads.remember_in_generation(
        "reorder-brands", brand, "STATS_CACHE_TTL", lambda: _load_totals(brand), scope
    )


def totals_statement(brand: str | None = None) -> Select:
    """Select each brand's paints to order and units suggested (read from the index alone)."""
    return (
        select(Paint.brand, func.count(), func.sum(levels.SUGGESTED_QUANTITY))
        .where(*ReorderRequest(brand).conditions())
        .group_by(Paint.brand)
        .order_by(Paint.brand)
    )


def _load_totals(brand: str | None) -> list[BrandTotal]:
    rows = db.session.execute(totals_statement(brand))
    return [BrandTotal(name, paints, int(units)) for name, paints, units in rows]


def reorder_lines(brand: str | None = None) -> Iterator[ReorderLine]:
    """Yield the whole list (or one brand's), a batch at a time, for the CSV to order with.

    Each batch starts after the last line of the one before, so no cursor stays open
    between batches (see listing.matching_paints, which a streamed export needs too).
    """
    where = ReorderRequest(brand).conditions()
    after: tuple[Any, ...] | None = None
    while True:
        seek = [] if after is None else [tuple_(*ORDER) > after]
        query = select(Paint).where(*where, *seek).order_by(*ORDER).limit(EXPORT_BATCH)
        batch = db.session.scalars(query).all()
        yield from (_line(paint) for paint in batch)
        if len(batch) < EXPORT_BATCH:
            return
        last = batch[-1]
        after = (last.brand, last.name, last.id)


def _line(paint: Paint) -> ReorderLine:
    quantity = levels.suggested_quantity(paint.stock, paint.reorder_level, paint.reorder_quantity)
    return ReorderLine(PaintRecord.of(paint), quantity)
