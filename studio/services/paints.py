"""Finding, creating, editing and deleting paints."""

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from ..extensions import db
from ..models import Paint, StockMovement, paint_search_document
from . import cache
from .errors import Conflict, NotFound, ValidationError, VersionConflict
from .validation import (
    MAX_INT,
    PAINT_RULES,
    FieldError,
    clean_int,
    clean_text,
    validate_paint,
)

SORT_COLUMNS = {
    "name": Paint.name,
    "brand": Paint.brand,
    "stock": Paint.stock,
    "price": Paint.price,
    "created_at": Paint.created_at,
}
STOCK_STATUSES = ("in_stock", "low_stock", "out_of_stock")
MAX_PER_PAGE = 100
MAX_PAGE = 10_000_000
BULK_BATCH_SIZE = 2000
ZERO_PRICE = Decimal("0.00")
TSQUERY_SPECIALS = re.compile(r"[&|!():*<>'\"\\]")


@dataclass(frozen=True)
class PaintRecord:
    """A read-only copy of a paint, safe to cache and share between requests and workers."""

    id: int
    name: str
    brand: str
    color_code: str | None
    color_type: str | None
    color_family: str | None
    image_url: str | None
    stock: int
    price: Decimal
    description: str | None
    color_preview: str | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, paint: Paint) -> "PaintRecord":
        return cls(**{column.name: getattr(paint, column.name) for column in fields(cls)})


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    items: Sequence[Any]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page * self.per_page < self.total


def parse_page(args: Mapping[str, str], errors: dict[str, str]) -> tuple[int, int]:
    """Return (page, per_page) from query arguments, noting bad values in `errors`."""
    result = []
    for field, default, maximum in (("page", 1, MAX_PAGE), ("per_page", 20, MAX_PER_PAGE)):
        try:
            result.append(
                clean_int(args.get(field, default), minimum=1, maximum=maximum, from_text=True)
            )
        except FieldError as exc:
            errors[field] = str(exc)
            result.append(default)
    return result[0], result[1]


@dataclass(frozen=True)
class PaintFilter:
    """What a paint listing asks for: search, filters, order and page."""

    q: str | None = None
    brand: str | None = None
    color_family: str | None = None
    color_type: str | None = None
    stock: str | None = None
    sort: str = "name"
    page: int = 1
    per_page: int = 20

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "PaintFilter":
        """Return the filter described by query arguments, or raise ValidationError."""
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for field, max_length in (
            ("q", 200),
            ("brand", 100),
            ("color_family", 50),
            ("color_type", 50),
        ):
            try:
                values[field] = clean_text(args.get(field), max_length=max_length)
            except FieldError as exc:
                errors[field] = str(exc)
        stock = args.get("stock") or None
        if stock is not None and stock not in STOCK_STATUSES:
            errors["stock"] = f"must be one of {', '.join(STOCK_STATUSES)}."
        sort = args.get("sort") or "name"
        if sort.removeprefix("-") not in SORT_COLUMNS:
            allowed = ", ".join(SORT_COLUMNS)
            errors["sort"] = f"must be one of {allowed}, with a leading - for descending."
        page, per_page = parse_page(args, errors)
        if errors:
            raise ValidationError(errors)
        return cls(stock=stock, sort=sort, page=page, per_page=per_page, **values)

    def conditions(self, dialect: str, low_stock_threshold: int) -> list[ColumnElement[bool]]:
        """Return the WHERE clauses of this filter."""
        clauses: list[ColumnElement[bool]] = []
        if self.q:
            clauses.extend(search_conditions(self.q, dialect))
        for field in ("brand", "color_family", "color_type"):
            value = getattr(self, field)
            if value is not None:
                clauses.append(getattr(Paint, field) == value)
        if self.stock == "out_of_stock":
            clauses.append(Paint.stock == 0)
        elif self.stock == "low_stock":
            clauses.append(Paint.stock.between(1, low_stock_threshold))
        elif self.stock == "in_stock":
            clauses.append(Paint.stock > low_stock_threshold)
        return clauses

    def order_by(self) -> list[ColumnElement[Any]]:
        """Return the ORDER BY terms, with the id as a tie-breaker so pages are stable."""
        descending = self.sort.startswith("-")
        column = SORT_COLUMNS[self.sort.removeprefix("-")]
        if descending:
            return [column.desc(), Paint.id.desc()]
        return [column.asc(), Paint.id.asc()]


def search_terms(q: str) -> list[str]:
    """Split a search box's text into plain words."""
    return TSQUERY_SPECIALS.sub(" ", q).split()


def search_conditions(q: str, dialect: str) -> list[ColumnElement[bool]]:
    """Return clauses matching every word of `q` as a prefix (full text on PostgreSQL)."""
    terms = search_terms(q)
    if not terms:
        return []
    if dialect == "postgresql":
        query = " & ".join(f"'{term}':*" for term in terms)
        return [paint_search_document().op("@@")(func.to_tsquery("english", query))]
    clauses = []
    for term in terms:
        pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        columns = (Paint.name, Paint.brand, Paint.color_code, Paint.description)
        clauses.append(or_(*(column.ilike(pattern, escape="\\") for column in columns)))
    return clauses


def dialect_name() -> str:
    """Return the name of the database the session talks to."""
    return db.session.get_bind().dialect.name


def list_paints(paint_filter: PaintFilter, low_stock_threshold: int) -> Page:
    """Return the page of paints matching the filter (cached until the next write)."""
    return cache.remember_in_generation(
        "paints",
        (paint_filter, low_stock_threshold),
        "LIST_CACHE_TTL",
        lambda: _load_page(paint_filter, low_stock_threshold),
    )


def _load_page(paint_filter: PaintFilter, low_stock_threshold: int) -> Page:
    where = paint_filter.conditions(dialect_name(), low_stock_threshold)
    total = db.session.scalar(select(func.count(Paint.id)).where(*where)) or 0
    offset = (paint_filter.page - 1) * paint_filter.per_page
    query = (
        select(Paint)
        .where(*where)
        .order_by(*paint_filter.order_by())
        .offset(offset)
        .limit(paint_filter.per_page)
    )
    items = tuple(PaintRecord.of(paint) for paint in db.session.scalars(query))
    return Page(items, total, paint_filter.page, paint_filter.per_page)


def matching_paints(paint_filter: PaintFilter, low_stock_threshold: int) -> Iterator[Paint]:
    """Yield every paint matching the filter, in its order, streamed in batches."""
    where = paint_filter.conditions(dialect_name(), low_stock_threshold)
    query = select(Paint).where(*where).order_by(*paint_filter.order_by())
    yield from db.session.scalars(query.execution_options(yield_per=1000))


@dataclass(frozen=True)
class FilterChoices:
    """The values the list's filters offer."""

    brands: list[str]
    color_families: list[str]
    color_types: list[str]


def filter_choices() -> FilterChoices:
    """Return the distinct brands, colour families and types in the inventory."""

    def distinct(column: Any) -> list[str]:
        query = select(column).where(column.is_not(None)).distinct().order_by(column)
        return list(db.session.scalars(query))

    def load() -> FilterChoices:
        return FilterChoices(
            distinct(Paint.brand), distinct(Paint.color_family), distinct(Paint.color_type)
        )

    return cache.remember_in_generation("choices", (), "LIST_CACHE_TTL", load)


def low_stock_paints(low_stock_threshold: int, limit: int = 10) -> list[PaintRecord]:
    """Return the paints closest to running out (but not yet out), fewest first."""
    query = (
        select(Paint)
        .where(Paint.stock.between(1, low_stock_threshold))
        .order_by(Paint.stock, Paint.id)
        .limit(limit)
    )

    def load() -> list[PaintRecord]:
        return [PaintRecord.of(paint) for paint in db.session.scalars(query)]

    return cache.remember_in_generation(
        "low-stock", (low_stock_threshold, limit), "STATS_CACHE_TTL", load
    )


def get_paint_record(paint_id: int) -> PaintRecord:
    """Return a read-only copy of the paint (cached until it changes), or raise NotFound."""
    return cache.remember(
        cache.paint_key(paint_id), "PAINT_CACHE_TTL", lambda: PaintRecord.of(get_paint(paint_id))
    )


def get_paint(paint_id: int) -> Paint:
    """Return the paint, or raise NotFound."""
    paint = db.session.get(Paint, paint_id) if 0 < paint_id <= MAX_INT else None
    if paint is None:
        raise NotFound(f"Paint {paint_id} does not exist.")
    return paint


def create_paint(data: Mapping[str, Any], user_id: int | None, *, from_text: bool = False) -> Paint:
    """Create a paint from submitted fields; its opening stock is the first movement."""
    fields = validate_paint(data, from_text=from_text)
    paint = Paint(**fields)
    db.session.add(paint)
    with _unique_code_guard():
        db.session.flush()
        if paint.stock:
            db.session.add(
                StockMovement(
                    paint_id=paint.id,
                    delta=paint.stock,
                    stock_after=paint.stock,
                    kind="initial",
                    reason="Opening stock",
                    user_id=user_id,
                )
            )
        db.session.commit()
    cache.paints_changed(paint.id)
    return paint


def update_paint(
    paint_id: int,
    data: Mapping[str, Any],
    user_id: int | None,
    *,
    from_text: bool = False,
) -> Paint:
    """Apply an edit made on `data["version"]`; refuse it if the paint changed since."""
    changes = dict(data)
    errors: dict[str, str] = {}
    version = None
    try:
        version = clean_int(
            changes.pop("version", None), minimum=1, maximum=MAX_INT, from_text=from_text
        )
    except FieldError as exc:
        errors["version"] = "is required." if "version" not in data else str(exc)
    try:
        fields = validate_paint(changes, partial=True, from_text=from_text)
    except ValidationError as exc:
        errors.update(exc.fields)
    if errors:
        raise ValidationError(errors)
    paint = get_paint(paint_id)
    if paint.version != version:
        raise _version_conflict(paint)
    old_stock = paint.stock
    for field, value in fields.items():
        setattr(paint, field, value)
    if "stock" in fields and fields["stock"] != old_stock:
        db.session.add(
            StockMovement(
                paint_id=paint.id,
                delta=fields["stock"] - old_stock,
                stock_after=fields["stock"],
                kind="correction",
                reason="Stock corrected on edit",
                user_id=user_id,
            )
        )
    try:
        with _unique_code_guard():
            db.session.commit()
    except StaleDataError:
        # Another admin saved (or stock moved) between our read and our write.
        db.session.rollback()
        raise _version_conflict(get_paint(paint_id)) from None
    cache.paints_changed(paint_id)
    return paint


def delete_paint(paint_id: int) -> None:
    """Delete the paint and its stock history."""
    result = db.session.execute(delete(Paint).where(Paint.id == paint_id))
    if result.rowcount == 0:
        db.session.rollback()
        raise NotFound(f"Paint {paint_id} does not exist.")
    db.session.commit()
    cache.paints_changed(paint_id)


def bulk_create_paints(
    rows: Iterable[Mapping[str, Any]],
    *,
    kind: str,
    reason: str,
    user_id: int | None,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Insert already validated paints in batches, in one transaction; return how many."""
    count = 0
    batch: list[Mapping[str, Any]] = []
    with _unique_code_guard():
        for row in rows:
            batch.append(row)
            if len(batch) == BULK_BATCH_SIZE:
                count += _insert_batch(batch, kind, reason, user_id)
                batch = []
                if on_batch:
                    on_batch(count)
        if batch:
            count += _insert_batch(batch, kind, reason, user_id)
            if on_batch:
                on_batch(count)
        db.session.commit()
    cache.paints_changed()
    return count


def _insert_batch(
    batch: list[Mapping[str, Any]], kind: str, reason: str, user_id: int | None
) -> int:
    # Every row gets every key, so the driver can send a batch as one statement.
    rows = [{**dict.fromkeys(PAINT_RULES), "stock": 0, "price": ZERO_PRICE, **row} for row in batch]
    statement = insert(Paint).returning(Paint.id, Paint.stock, sort_by_parameter_order=True)
    inserted = db.session.execute(statement, rows).all()
    movements = [
        {
            "paint_id": paint_id,
            "delta": stock,
            "stock_after": stock,
            "kind": kind,
            "reason": reason,
            "user_id": user_id,
        }
        for paint_id, stock in inserted
        if stock
    ]
    if movements:
        db.session.execute(insert(StockMovement), movements)
    return len(inserted)


def _version_conflict(paint: Paint) -> VersionConflict:
    return VersionConflict(
        f"Paint {paint.id} was changed by someone else (now version {paint.version}); "
        "reload it and apply your change again.",
        current_version=paint.version,
    )


@contextmanager
def _unique_code_guard() -> Iterator[None]:
    """Turn a duplicate (brand, color_code) into a Conflict, after rolling back."""
    try:
        yield
    except IntegrityError as exc:
        db.session.rollback()
        if "color_code" in str(exc.orig):
            raise Conflict(
                "Another paint of this brand already has this colour code.",
                {"color_code": "is already used by another paint of this brand."},
            ) from None
        raise
