"""Reading the history: a paint's timeline and the shop's activity, filtered, newest first.

Entries are read in (created_at, id) order, newest first, which each filter's index gives
as it is (see HistoryEntry): a page is one range of one index, and a cursor (`after`)
starts the next page where the last ended, as fast deep in the history as at its start.
Reading a paint never reads its history; only these do.
"""

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, func, literal, literal_column, select, tuple_

from ..extensions import db
from ..models import HISTORY_KINDS, HistoryEntry, Paint, User
from .errors import BadQuery, NotFound
from .listing import EXACT_COUNT_LIMIT, Page, dialect_name, parse_page
from .planner import estimated_rows
from .validation import MAX_INT, FieldError, clean_text

DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
EXPORT_BATCH = 1000
NEWEST_FIRST = (HistoryEntry.created_at.desc(), HistoryEntry.id.desc())


@dataclass(frozen=True)
class HistoryFilter:
    """What a history listing asks for: an admin, a kind, a date range (UTC), a page."""

    user: str | None = None
    kind: str | None = None
    since: date | None = None
    until: date | None = None
    page: int = 1
    per_page: int = 20
    after: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "HistoryFilter":
        """Return the filter the query arguments describe, or raise BadQuery naming each."""
        errors: dict[str, str] = {}
        try:
            user = clean_text(args.get("user"), max_length=80)
        except FieldError as exc:
            errors["user"], user = str(exc), None
        kind = args.get("kind") or None
        if kind is not None and kind not in HISTORY_KINDS:
            errors["kind"] = f"must be one of {', '.join(HISTORY_KINDS)}."
        # A range that ends before it starts is no error (the document cannot say so): it
        # matches nothing.
        since, until = (_date(args, name, errors) for name in ("since", "until"))
        after = args.get("after") or None
        if after is not None:
            try:
                decode_cursor(after)
            except FieldError as exc:
                errors["after"] = str(exc)
        page, per_page = parse_page(args, errors)
        if errors:
            raise BadQuery(errors)
        return cls(user, kind, since, until, page, per_page, after)

    def conditions(self) -> list[ColumnElement[bool]]:
        """Return the WHERE clauses of this filter (without the cursor)."""
        clauses = []
        if self.user:
            admin = select(User.id).where(User.username == self.user).scalar_subquery()
            clauses.append(HistoryEntry.user_id == admin)
        if self.kind:
            clauses.append(HistoryEntry.kind == self.kind)
        if self.since:
            clauses.append(HistoryEntry.created_at >= _midnight(self.since))
        if self.until and self.until < date.max:
            clauses.append(HistoryEntry.created_at < _midnight(self.until + timedelta(days=1)))
        return clauses

    def seek(self, kind_first: bool = False) -> ColumnElement[bool] | None:
        """Return the condition that starts the page after the cursor.

        `kind_first`: the page is ordered by the filter's kind first (see _page_of_kind);
        the kind then leads the comparison too, so that the kind's index bounds the scan.
        """
        if self.after is None:
            return None
        created_at, entry_id = decode_cursor(self.after)
        created = literal(created_at, HistoryEntry.created_at.type)
        if not kind_first:
            return tuple_(HistoryEntry.created_at, HistoryEntry.id) < tuple_(created, entry_id)
        kind = literal(self.kind, HistoryEntry.kind.type)
        key = tuple_(HistoryEntry.kind, HistoryEntry.created_at, HistoryEntry.id)
        return key < tuple_(kind, created, entry_id)

    def args(self) -> dict[str, str]:
        """Return the filter and page size (not the page) as query arguments, for links."""
        values = {"user": self.user, "kind": self.kind, "since": self.since, "until": self.until}
        if self.per_page != HistoryFilter.per_page:
            values["per_page"] = self.per_page
        return {name: str(value) for name, value in values.items() if value}


def _date(args: Mapping[str, str], name: str, errors: dict[str, str]) -> date | None:
    value = args.get(name) or None
    if value is None:
        return None
    try:
        if not DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = "must be a date written YYYY-MM-DD, such as 2026-03-31."
        return None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def encode_cursor(entry: HistoryEntry) -> str:
    """Return an opaque cursor pointing just after `entry`, newest first."""
    created_at = entry.created_at.replace(tzinfo=entry.created_at.tzinfo or UTC)
    raw = json.dumps([created_at.isoformat(), entry.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Return the (created_at, id) a cursor points after; FieldError if it is not one of ours."""
    try:
        if len(cursor) > 200:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, entry_id = json.loads(raw)
        if not isinstance(entry_id, int) or isinstance(entry_id, bool):
            raise ValueError("an id is a whole number")
        if not 0 < entry_id <= 2**63 - 1 or not isinstance(moment, str):
            raise ValueError("out of range")
        created_at = datetime.fromisoformat(moment)
        if created_at.tzinfo is None:
            raise ValueError("a cursor's time has its zone")
        return created_at.astimezone(UTC), entry_id
    except (ValueError, TypeError, OverflowError, binascii.Error, RecursionError):
        raise FieldError("is not a cursor of this listing; start again from page 1.") from None


def timeline(
    paint_id: int, history_filter: HistoryFilter, added_at: datetime | None = None
) -> Page:
    """Return a page of the paint's history, newest first; a deleted paint's too.

    `added_at`: when the paint was added, if the caller has the paint (else it is read).
    """
    where = [HistoryEntry.paint_id == paint_id, *history_filter.conditions()]
    added = added_at or _added_at(paint_id)
    if added is not None:
        # SQLite gives the id of the newest paint, once deleted, to the next paint added:
        # that paint's history starts with it.
        where.append(HistoryEntry.created_at >= added)
    page = _page(where, history_filter)
    if not page.items and page.page == 1 and added is None:
        raise NotFound(f"Paint {paint_id} does not exist and has no history.")
    return page


def activity(history_filter: HistoryFilter) -> Page:
    """Return a page of the shop's history matching the filter, newest first."""
    others = (history_filter.user, history_filter.since, history_filter.until)
    if history_filter.kind and not any(others):
        return _page_of_kind(history_filter)
    return _page(history_filter.conditions(), history_filter)


def _page_of_kind(history_filter: HistoryFilter) -> Page:
    """Return a page of one kind of entry, read from the kind's index, newest first.

    With `kind = 'import'` and the entries of that kind 95 % of them, PostgreSQL walks the
    index of every entry by date instead, and when the newest 50,000 entries are stock
    adjustments it steps over all of them first: 88-213 ms for page 1 at 1,000,000 entries,
    against 0.07 ms from the kind's own index. It cannot know that kind and date go
    together. Ordered by the kind first, with the kind as a range (an equality would make
    that order redundant and be dropped by the planner), only the kind's index gives the
    order; the page is the same, the kind being one value.
    """
    kind = HistoryEntry.kind
    where = [kind >= history_filter.kind, kind <= history_filter.kind]
    return _page(where, history_filter, kind_first=True)


def every_entry(history_filter: HistoryFilter) -> Iterator[HistoryEntry]:
    """Yield every entry matching the filter, newest first, a batch (one query) at a time.

    No cursor stays open between batches: a streamed export outlives its request's session.
    """
    where = history_filter.conditions()
    batch_filter = replace(history_filter, after=None)
    while True:
        seek = batch_filter.seek()
        query = select(HistoryEntry).where(*where, *([] if seek is None else [seek]))
        batch = db.session.scalars(query.order_by(*NEWEST_FIRST).limit(EXPORT_BATCH)).all()
        yield from batch
        if len(batch) < EXPORT_BATCH:
            return
        batch_filter = replace(batch_filter, after=encode_cursor(batch[-1]))


def admins() -> list[str]:
    """Return the admins' names, for the Activity page's filter."""
    return list(db.session.scalars(select(User.username).order_by(User.username)))


def _page(
    where: list[ColumnElement[bool]], history_filter: HistoryFilter, kind_first: bool = False
) -> Page:
    """Return the page of the entries matching `where`, newest first (see _page_of_kind)."""
    total, exact = _count(where)
    order = (HistoryEntry.kind.desc(), *NEWEST_FIRST) if kind_first else NEWEST_FIRST
    query = select(HistoryEntry).where(*where).order_by(*order)
    seek = history_filter.seek(kind_first)
    per_page = history_filter.per_page
    if seek is not None:
        query = query.where(seek)
    else:
        query = query.offset((history_filter.page - 1) * per_page)
    rows = db.session.scalars(query.limit(per_page + 1)).all()
    has_next = len(rows) > per_page
    items = tuple(rows[:per_page])
    cursor = encode_cursor(items[-1]) if has_next else None
    return Page(items, total, history_filter.page, per_page, has_next, cursor, not exact)


def _count(where: list[ColumnElement[bool]]) -> tuple[int, bool]:
    """Return (total, exact): exact up to EXACT_COUNT_LIMIT, PostgreSQL's estimate beyond.

    As listing.count_matching: the planner's estimate first, and no counting where it is at
    least twice the limit (the shop's whole history is a million entries and more).
    """
    if dialect_name() != "postgresql":
        return db.session.scalar(select(func.count()).where(*where).select_from(HistoryEntry)), True
    estimate = estimated_rows(select(HistoryEntry.id).where(*where))
    if estimate >= 2 * EXACT_COUNT_LIMIT:
        return estimate, False
    capped = (
        select(literal_column("1"))
        .select_from(HistoryEntry)
        .where(*where)
        .limit(EXACT_COUNT_LIMIT + 1)
    )
    count = db.session.scalar(select(func.count()).select_from(capped.subquery())) or 0
    if count <= EXACT_COUNT_LIMIT:
        return count, True
    return max(estimate, count), False


def _added_at(paint_id: int) -> datetime | None:
    """Return when the paint with this id was added, None if there is none."""
    if not 0 < paint_id <= MAX_INT:
        return None
    return db.session.scalar(select(Paint.created_at).where(Paint.id == paint_id))
