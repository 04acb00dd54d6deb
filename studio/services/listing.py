"""Listing paints: filters, search, order, pages and keyset cursors."""

import base64
import binascii
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, DecimalException
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)

from ..extensions import db
from ..models import Paint, PaintTotals
from ..search import word_parts
from . import anchors, cache_scopes, cached_reads, levels, vocabularies
from .errors import ValidationError
from .paints import PAINT_COLUMNS, PAINT_ROW, PAINTS, PaintRecord
from .planner import estimated_rows
from .validation import MAX_INT, MAX_PRICE, FieldError, clean_int, clean_text

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
# Beyond this many matches a PostgreSQL listing reports the planner's estimate as its total.
EXACT_COUNT_LIMIT = 10_000
# A filter leaving at most this many paints has them sorted rather than walking the sort
# order's index. Sorting reads every match's row: 10,000 of them (one brand's low stock at
# 1,000,000 paints) cost 30 ms, where an index in the filter's order (brand and price, a
# type and brand, the reorder level's partial ones) gives the page in well under 1 ms.
SORT_MATCHES_LIMIT = 1_000
EXPORT_BATCH = 1000
# How many paints a broad search's walk along a sort order may read per match expected
# (see search_walk): the name index carries the search text (migration 0013), so its
# walk reads no table rows and costs a small part of what sorting a match does.
WALK_PER_MATCH = {"name": 10}
TEXT_FILTERS = {"q": 200, "brand": 100, "color_family": 50, "color_type": 50}


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    items: Sequence[Any]
    total: int
    page: int
    per_page: int
    has_next: bool = False
    next_cursor: str | None = None
    total_is_estimate: bool = False

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def parse_page(args: Mapping[str, str], errors: dict[str, str]) -> tuple[int, int]:
    """Return (page, per_page) from query arguments, noting bad values in `errors`."""
    result = []
    for field, default, maximum in (("page", 1, MAX_PAGE), ("per_page", 20, MAX_PER_PAGE)):
        try:
            result.append(
                clean_int(args.get(field) or default, minimum=1, maximum=maximum, from_text=True)
            )
        except FieldError as exc:
            errors[field] = str(exc)
            result.append(default)
    return result[0], result[1]


def encode_cursor(sort: str, record: PaintRecord) -> str:
    """Return an opaque cursor pointing just after `record` in the `sort` order."""
    value = getattr(record, sort.removeprefix("-"))
    if isinstance(value, datetime | Decimal):
        value = value.isoformat() if isinstance(value, datetime) else str(value)
    raw = json.dumps([sort, value, record.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    """Return the (sort value, id) a cursor points after; FieldError if it is not one of ours.

    A cursor comes back from the client, so it is checked as any input is: each value of
    the type, range and encoding of its column, before a query binds it.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, value, paint_id = json.loads(raw)
        if cursor_sort != sort or not _is_int_within(paint_id, MAX_INT):
            raise ValueError("another listing's cursor")
        return _cursor_value(sort.removeprefix("-"), value), paint_id
    except (ValueError, TypeError, DecimalException, binascii.Error, RecursionError):
        raise FieldError("is not a cursor of this listing; start again from page 1.") from None


def _cursor_value(column: str, value: Any) -> Any:
    """Return a cursor's sort value as its column holds it; ValueError if it cannot be one."""
    if column == "stock":
        if not _is_int_within(value, MAX_INT):
            raise ValueError("stock is a whole number of the column's range")
        return value
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("text expected")
    value.encode()  # UnicodeEncodeError (a ValueError) for a lone surrogate
    if column == "price":
        price = Decimal(value)
        if not price.is_finite() or not -MAX_PRICE <= price <= MAX_PRICE:
            raise ValueError("a price within the column's range")
        return price
    if column == "created_at":
        return datetime.fromisoformat(value)
    return value


def _is_int_within(value: Any, bound: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -bound <= value <= bound


def _canonical_choices(values: dict[str, Any]) -> None:
    """Spell a type or family asked for as its list does, so `blue` finds the Blue paints."""
    lists = None
    for field in vocabularies.VOCABULARY_KINDS:
        if values.get(field):
            lists = lists or vocabularies.current()
            values[field] = lists.canonical(field, values[field]) or values[field]


@dataclass(frozen=True)
class PaintFilter:
    """What a paint listing asks for: search, filters, order, page and cursor."""

    q: str | None = None
    brand: str | None = None
    color_family: str | None = None
    color_type: str | None = None
    stock: str | None = None
    sort: str = "name"
    page: int = 1
    per_page: int = 20
    after: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "PaintFilter":
        """Return the filter described by query arguments, or raise ValidationError."""
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for field, max_length in TEXT_FILTERS.items():
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
        after = args.get("after") or None
        if after is not None and len(after) > 1000:
            errors["after"] = "is not a cursor of this listing; start again from page 1."
        elif after is not None and "sort" not in errors:
            try:
                decode_cursor(after, sort)
            except FieldError as exc:
                errors["after"] = str(exc)
        page, per_page = parse_page(args, errors)
        if errors:
            raise ValidationError(errors)
        _canonical_choices(values)
        return cls(stock=stock, sort=sort, page=page, per_page=per_page, after=after, **values)

    def conditions(self, dialect: str) -> list[ColumnElement[bool]]:
        """Return the WHERE clauses of this filter (without the cursor).

        Low and in stock compare each paint with its own reorder level (see levels).
        """
        clauses: list[ColumnElement[bool]] = []
        if self.q:
            clauses.extend(search_conditions(self.q))
        for field in ("brand", "color_family", "color_type"):
            value = getattr(self, field)
            if value is not None:
                clauses.append(getattr(Paint, field) == value)
        if self.stock == "out_of_stock":
            clauses.append(levels.OUT)
        elif self.stock == "low_stock":
            clauses.append(levels.LOW)
        elif self.stock == "in_stock":
            clauses.append(levels.ABOVE_LEVEL)
        return clauses

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def column(self) -> Any:
        return SORT_COLUMNS[self.sort.removeprefix("-")]

    @property
    def narrows(self) -> bool:
        """True when the filter picks paints by search or by brand, family or type."""
        return any((self.q, self.brand, self.color_family, self.color_type))

    def order_by(self, *, matches_first: bool = False) -> list[ColumnElement[Any]]:
        """Return the ORDER BY terms, with the id as a tie-breaker so pages are stable.

        `matches_first` orders by an expression equal to the column (coalesce(c, c)) that
        no index provides: the database then finds the few matching rows through the
        filter's index and sorts them, instead of walking the sort index in the hope of
        meeting matches soon. That hope fails when filter and order are correlated (one
        brand's prices, or a word searched in names), and can cost a full index walk.
        """
        column = self.column
        if matches_first:
            # The columns are NOT NULL, so coalesce(c, c) is c, in c's own order.
            column = func.coalesce(column, column)
        if self.descending:
            return [column.desc(), Paint.id.desc()]
        return [column.asc(), Paint.id.asc()]

    def seek(self) -> ColumnElement[bool] | None:
        """Return the keyset condition that starts the page after the cursor."""
        if self.after is None:
            return None
        value, paint_id = decode_cursor(self.after, self.sort)
        key = tuple_(self.column, Paint.id)
        # The cursor's value is bound with the column's own type (cents on SQLite).
        bound = tuple_(literal(value, type_=self.column.type), paint_id)
        return key < bound if self.descending else key > bound


def search_terms(q: str) -> list[str]:
    """Split a search box's text into terms, each a LIKE pattern of its letters and digits.

    A term is folded (lower case, no accents) and any other characters between its letters
    and digits match any one character: "CIT-0000" becomes "cit_0000", which finds
    "CIT-000099", "cit 0000…" and "Cit.0000…"; "dark-bone" finds "Dark Bone" and "Dark-Bone".
    A term without letters or digits is dropped.
    """
    return ["_".join(parts) for parts in map(word_parts, q.split()) if parts]


def is_fragment(term: str) -> bool:
    """True when the term has a run of 3 letters or digits, which trigrams can look up."""
    return any(len(part) >= 3 for part in term.split("_"))


def search_conditions(q: str, column: Any = Paint.search_text) -> list[ColumnElement[bool]]:
    """Return clauses matching every term of `q`, the same on PostgreSQL and SQLite.

    A term with 3 or more letters or digits in a row matches anywhere in the name, brand,
    code or description. A shorter one ("xf", "7") matches the start of a word: trigrams
    cannot look up fewer than 3 characters anywhere, and reading every paint would be slow,
    but the index keeps the start of each word (pg_trgm pads words with spaces). The
    trigram index on search_text finds both. `column` is the search text to match (a
    subquery's copy of it, for a walk).
    """
    clauses = []
    for term in search_terms(q):
        if is_fragment(term):
            clauses.append(column.like(f"%{term}%"))
        else:
            word_start = or_(column.like(f"{term}%"), column.like(f"% {term}%"))
            clauses.append(word_start)
    return clauses


def dialect_name() -> str:
    """Return the name of the database the session talks to."""
    return db.session.get_bind().dialect.name


def list_paints(paint_filter: PaintFilter) -> Page:
    """Return the page of paints matching the filter (cached until a write that can change it)."""
    scope = cache_scopes.listing_scope(
        brand=paint_filter.brand,
        color_family=paint_filter.color_family,
        color_type=paint_filter.color_type,
        stock=paint_filter.stock,
    )
    load = _search_by_catalogue if finds_by_catalogue(paint_filter) else _load_page
    return cached_reads.remember_in_generation(
        "paints", paint_filter, "LIST_CACHE_TTL", lambda: load(paint_filter), scope
    )


def finds_by_catalogue(paint_filter: PaintFilter) -> bool:
    """Tell whether a listing's paints and order hold across stock changes: a search, with
    no stock filter, sorted by anything but stock."""
    stock_sort = paint_filter.column is Paint.stock
    return bool(paint_filter.q) and paint_filter.stock is None and not stock_sort


def _search_by_catalogue(paint_filter: PaintFilter) -> Page:
    """Load a search's page: its ids from the cache's catalogue scope, its rows afresh.

    The whole page is cached as any listing's is, and retired by a stock change of any of
    its paints (they show their stock). Finding the page again costs PostgreSQL tens of
    milliseconds for a broad search at 1,000,000 paints, and a stock change, the most
    frequent write, cannot change which paints it finds nor their order
    (cache_scopes.CATALOGUE): the ids are kept there, and only the rows are read again.
    """
    loaded: list[Page] = []

    def load() -> Page:
        loaded.append(_load_page(paint_filter))
        return replace(loaded[0], items=tuple(record.id for record in loaded[0].items))

    # Kept as long as a paint is: like a paint's, they change only by the writes that retire
    # them, and finding them again is what a listing's shorter life would cost every minute.
    found = cached_reads.remember_in_generation(
        "search-ids", paint_filter, "PAINT_CACHE_TTL", load, cache_scopes.CATALOGUE
    )
    if loaded:  # found just now, rows and all
        return loaded[0]
    rows = db.session.execute(PAINT_ROW.where(PAINTS.c.id.in_(found.items))).all()
    records = {record.id: record for record in map(PaintRecord.from_row, rows)}
    if len(records) < len(found.items):
        # A paint deleted since its id was read (its deletion retires the scope; this read
        # began before that).
        return _load_page(paint_filter)
    return replace(found, items=tuple(records[paint_id] for paint_id in found.items))


def _load_page(paint_filter: PaintFilter) -> Page:
    dialect = dialect_name()
    where = paint_filter.conditions(dialect)
    if paint_filter.q and dialect == "postgresql":
        return _search_page(paint_filter, where)
    total, exact = count_matching(where, dialect)
    if anchors.usable(paint_filter, where, dialect):
        return _anchored_page(paint_filter, total, exact)
    rows = db.session.execute(page_statement(paint_filter, where, few(total, exact))).all()
    return _page_of(paint_filter, rows, total, exact)


def few(total: int, exact: bool) -> bool:
    """Tell whether a filter's matches are few enough to be sorted (SORT_MATCHES_LIMIT)."""
    return exact and total <= SORT_MATCHES_LIMIT


def _anchored_page(paint_filter: PaintFilter, total: int, exact: bool) -> Page:
    """Return a deep page of the full listing, started from an anchor where one holds.

    A page that found none (the order changed since the anchors were built, or they never
    were) is read by offset in the same statement, and asks for a rebuild off the request.
    """
    results = db.session.execute(anchors.page_statement(paint_filter, paint_filter.order_by()))
    rows = results.all()
    if not any(row.anchored for row in rows):
        anchors.request_rebuild()
    return _page_of(paint_filter, rows, total, exact)


def _page_of(paint_filter: PaintFilter, rows: Sequence[Any], total: int, exact: bool) -> Page:
    """Return the page of these rows, each starting with PAINT_COLUMNS (see page_statement)."""
    has_next = len(rows) > paint_filter.per_page
    items = tuple(PaintRecord.from_row(row) for row in rows[: paint_filter.per_page])
    cursor = encode_cursor(paint_filter.sort, items[-1]) if has_next else None
    return Page(items, total, paint_filter.page, paint_filter.per_page, has_next, cursor, not exact)


def _search_page(paint_filter: PaintFilter, where: list[ColumnElement[bool]]) -> Page:
    """Return a page of a search on PostgreSQL: walked when broad, else its matches sorted.

    Sorting reads every match, so it counts them as it goes (a window count over the
    same rows) instead of reading them a second time for the total.
    """
    estimate, walk = search_walk(paint_filter, where)
    if walk is not None:
        rows = db.session.execute(page_statement(paint_filter, where, False, walk=walk)).all()
        if len(rows) > paint_filter.per_page:
            if estimate >= 2 * EXACT_COUNT_LIMIT:
                return _page_of(paint_filter, rows, estimate, False)
            return _page_of(
                paint_filter, rows, *count_matching(where, "postgresql", estimate=estimate)
            )
        # The walk met fewer matches than expected (the last page, or matches that come
        # late in the order): sort the matches instead.
    statement = page_statement(paint_filter, where, True)
    if paint_filter.after is not None:  # the page's rows are not all the matches
        rows = db.session.execute(statement).all()
        return _page_of(paint_filter, rows, *count_matching(where, "postgresql", estimate=estimate))
    counted = db.session.execute(statement.add_columns(func.count().over())).all()
    if not counted:  # a page beyond the last
        return _page_of(paint_filter, [], *count_matching(where, "postgresql", estimate=estimate))
    return _page_of(paint_filter, counted, counted[0][-1], True)


def search_walk(
    paint_filter: PaintFilter, where: list[ColumnElement[bool]]
) -> tuple[int, int | None]:
    """Return the planner's estimate of a search's matches, and how far a walk may go.

    With `m` of `n` paints expected to match, walking the sort order's index and testing
    each paint reaches the page after about (offset + limit) * n / m paints; sorting the
    matches reads all m. A broad search, one expected to match more than EXACT_COUNT_LIMIT
    paints and to reach its page sooner by walking, gets `walk`: how many paints the walk
    may read before the page gives up on it and sorts the matches, about what sorting
    would cost (WALK_PER_MATCH). Otherwise, and when other filters join the search, walk
    is None. A broad search's total is the estimate when that is well beyond
    EXACT_COUNT_LIMIT (twice), so it never counts its tens of thousands of matches.
    """
    estimate = _estimate(where)
    only_search = not replace(paint_filter, q=None).conditions("postgresql")
    if not only_search or estimate <= EXACT_COUNT_LIMIT:
        return estimate, None
    offset = 0 if paint_filter.after else (paint_filter.page - 1) * paint_filter.per_page
    walked = (offset + paint_filter.per_page + 1) * _estimate([])
    if walked >= estimate * estimate:
        return estimate, None
    return estimate, estimate * WALK_PER_MATCH.get(paint_filter.sort.removeprefix("-"), 1)


def page_statement(
    paint_filter: PaintFilter,
    where: list[ColumnElement[bool]],
    few_matches: bool,
    *,
    walk: int | None = None,
) -> Select:
    """Select one page (plus one row, to know if another follows).

    Sorting the matches is cheap when a filter leaves few of them (`few_matches`: at most
    EXACT_COUNT_LIMIT), and beats walking the sort index for a search, unless the search
    is broad (see search_walk). With `walk`, the sort index is read in order from its
    start (or the cursor), at most `walk` entries of it, each paint tested, and the
    reading stops once the page is full; the bound keeps a term whose matches come late
    in the order (a word that starts names, sorted by name) from reading the whole index.

    With a cursor the page starts by seeking the sort index (keyset), so page 20,000
    costs what page 1 does. Without one, deep offsets skip over ids in a subquery that
    the sort index alone can answer, then read only the rows of the page.
    """
    if walk is not None:
        return _walk_statement(paint_filter, walk)
    matches_first = bool(paint_filter.q) or (paint_filter.narrows and few_matches)
    limit = paint_filter.per_page + 1
    order = paint_filter.order_by(matches_first=matches_first)
    seek = paint_filter.seek()
    if seek is not None:
        return select(*PAINT_COLUMNS).where(*where, seek).order_by(*order).limit(limit)
    offset = (paint_filter.page - 1) * paint_filter.per_page
    if offset == 0 or matches_first:
        return select(*PAINT_COLUMNS).where(*where).order_by(*order).offset(offset).limit(limit)
    ids = select(Paint.id).where(*where).order_by(*order).offset(offset).limit(limit).subquery()
    return select(*PAINT_COLUMNS).join(ids, Paint.id == ids.c.id).order_by(*order)


def _walk_statement(paint_filter: PaintFilter, walk: int) -> Select:
    """Select a page of the search's matches among the first `walk` paints in the sort order.

    The walk reads the sort order's index with each paint's search text: from the index
    alone for the name, whose index carries it (migration 0013: names are what searches
    find, so a searched word and the name order go together); through the table for the
    others, whose order has nothing to do with the words. Only the page's rows are read
    in full.
    """
    seek = paint_filter.seek()
    steps = (
        select(Paint.id, paint_filter.column.label("key"), Paint.search_text)
        .where(*([] if seek is None else [seek]))
        .order_by(*paint_filter.order_by())
        .limit(walk)
        .subquery("walk")
    )
    order = [steps.c.key, steps.c.id]
    if paint_filter.descending:
        order = [term.desc() for term in order]
    offset = 0 if seek is not None else (paint_filter.page - 1) * paint_filter.per_page
    found = (
        select(steps.c.id, steps.c.key)
        .where(*search_conditions(paint_filter.q or "", steps.c.search_text))
        .order_by(*order)
        .offset(offset)
        .limit(paint_filter.per_page + 1)
        .subquery("found")
    )
    page_order = [found.c.key, found.c.id]
    if paint_filter.descending:
        page_order = [term.desc() for term in page_order]
    return select(*PAINT_COLUMNS).join(found, Paint.id == found.c.id).order_by(*page_order)


def count_matching(
    where: list[ColumnElement[bool]],
    dialect: str,
    *,
    exact: bool = False,
    estimate: int | None = None,
) -> tuple[int, bool]:
    """Return (total, exact): exact up to EXACT_COUNT_LIMIT, PostgreSQL's estimate beyond.

    `estimate` is the planner's estimate for the filter, when the caller already has it.
    The estimate comes first, from statistics: where it is at least twice the limit, the
    matches are not counted at all (counting 10,001 of them cost 10-13 ms of every
    low-stock page at 1,000,000 paints); below that they are counted up to the limit.
    """
    if exact or dialect != "postgresql":
        return db.session.scalar(select(func.count(Paint.id)).where(*where)) or 0, True
    if estimate is None:
        estimate = _estimate(where)
    if estimate >= 2 * EXACT_COUNT_LIMIT:
        return estimate, False
    capped = (
        select(literal_column("1")).select_from(Paint).where(*where).limit(EXACT_COUNT_LIMIT + 1)
    )
    count = db.session.scalar(select(func.count()).select_from(capped.subquery())) or 0
    if count <= EXACT_COUNT_LIMIT:
        return count, True
    return max(estimate, count), False


def _estimate(where: list[ColumnElement[bool]]) -> int:
    """Return the planner's row estimate for the filter (statistics, no counting)."""
    if not where:
        # Kept up to date by ANALYZE and autovacuum.
        reltuples = db.session.scalar(
            text("SELECT reltuples::bigint FROM pg_class WHERE oid = 'paints'::regclass")
        )
        return int(reltuples or 0)
    return estimated_rows(select(Paint.id).where(*where))


def matching_paints(paint_filter: PaintFilter) -> Iterator[Paint]:
    """Yield every paint matching the filter, in its order, a batch at a time.

    Each batch is a query of its own that starts after the last paint of the one before,
    as the list's pages do, so no cursor stays open between batches: a streamed export
    outlives the session of its request (Flask ends the app context when the view returns,
    before the body is sent), and a PostgreSQL cursor does not survive that.
    """
    where = paint_filter.conditions(dialect_name())
    order = paint_filter.order_by()
    batch_filter = replace(paint_filter, after=None)
    while True:
        seek = batch_filter.seek()
        query = select(Paint).where(*where, *([] if seek is None else [seek])).order_by(*order)
        batch = db.session.scalars(query.limit(EXPORT_BATCH)).all()
        yield from batch
        if len(batch) < EXPORT_BATCH:
            return
        batch_filter = replace(batch_filter, after=encode_cursor(paint_filter.sort, batch[-1]))


def matching_ids(paint_filter: PaintFilter, limit: int) -> list[int]:
    """Return the ids of the paints matching the filter, in its order, at most `limit`."""
    where = paint_filter.conditions(dialect_name())
    query = select(Paint.id).where(*where).order_by(*paint_filter.order_by()).limit(limit)
    return list(db.session.scalars(query))


def paints_by_ids(paint_ids: Sequence[int]) -> list[Paint]:
    """Return the paints with these ids (those that still exist), by name."""
    query = select(Paint).where(Paint.id.in_(paint_ids)).order_by(Paint.name, Paint.id)
    return list(db.session.scalars(query))


@dataclass(frozen=True)
class FilterChoices:
    """The values the list's filters offer."""

    brands: list[str]
    color_families: list[str]
    color_types: list[str]


def filter_choices() -> FilterChoices:
    """Return the distinct brands, and the admins' lists of colour families and types."""

    def load() -> list[str]:
        # From the running totals (a hundred rows), not the paints: DISTINCT over a million
        # paints took 2.5 s. A brand whose paints are all gone keeps rows at zero.
        query = (
            select(PaintTotals.brand)
            .group_by(PaintTotals.brand)
            .having(func.sum(PaintTotals.paints) > 0)
            .order_by(PaintTotals.brand)
        )
        return list(db.session.scalars(query))

    brands = cached_reads.remember_in_generation(
        "choices", (), "LIST_CACHE_TTL", load, cache_scopes.BRANDS
    )
    vocabulary = vocabularies.current()
    return FilterChoices(
        brands, list(vocabulary.names["color_family"]), list(vocabulary.names["color_type"])
    )


def low_stock_paints(limit: int = 10) -> list[PaintRecord]:
    """Return the low paints closest to running out (but not yet out), fewest first."""
    query = select(*PAINT_COLUMNS).where(levels.LOW).order_by(Paint.stock, Paint.id).limit(limit)

    def load() -> list[PaintRecord]:
        return [PaintRecord.from_row(row) for row in db.session.execute(query)]

    scope = cache_scopes.listing_scope(stock="low_stock")
    return cached_reads.remember_in_generation("low-stock", limit, "STATS_CACHE_TTL", load, scope)
