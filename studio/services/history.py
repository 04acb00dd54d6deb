"""Recording who changed what: one history entry per change, in the change's own transaction.

The services that change paints call these before they commit, so an entry exists exactly
when its change does. Reading the history is studio.services.activity.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Integer,
    Select,
    Text,
    case,
    cast,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    type_coerce,
)

from ..extensions import db
from ..models import HistoryEntry, PaintFields

ENTRIES = HistoryEntry.__table__
NOTE_LENGTH = 300
# The fields an admin fills in, whose changes are recorded.
PAINT_FIELDS = tuple(PaintFields.__annotations__)


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an admin, on the admin pages or with one of their API tokens.

    Passed by the views to the services, which never look at the request themselves.
    The command line and demo data act as no one (`NOBODY`).
    """

    user_id: int | None = None
    username: str | None = None
    token_name: str | None = None


NOBODY = Actor()


def stored(value: Any) -> Any:
    """Return a field's value as an entry keeps it: prices as strings ("4.50")."""
    return f"{value:.2f}" if isinstance(value, Decimal) else value


def field_changes(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, names: Iterable[str] = ()
) -> dict[str, list[Any]]:
    """Return {field: [old, new]} for the paint fields whose value differs between the two."""
    changes = {}
    for name in names or PAINT_FIELDS:
        before = stored(old.get(name)) if old is not None else None
        after = stored(new.get(name)) if new is not None else None
        if before != after:
            changes[name] = [before, after]
    return changes


def entry(
    kind: str,
    actor: Actor | None,
    paint: Mapping[str, Any] | None,
    changes: Mapping[str, list[Any]],
    note: str | None = None,
) -> dict[str, Any]:
    """Return an entry's row: `paint` gives its id, brand, name and code (None: the whole shop)."""
    actor = actor or NOBODY
    paint = paint or {}
    return {
        "kind": kind,
        "user_id": actor.user_id,
        "username": actor.username,
        "token_name": actor.token_name,
        "paint_id": paint.get("id"),
        "paint_brand": paint.get("brand"),
        "paint_name": paint.get("name"),
        "paint_code": paint.get("color_code"),
        "changes": dict(changes),
        "note": note[:NOTE_LENGTH] if note else None,
    }


def record(
    kind: str,
    actor: Actor | None,
    paint: Mapping[str, Any] | None,
    changes: Mapping[str, list[Any]],
    note: str | None = None,
) -> None:
    """Add one entry to the session's transaction; it commits, or rolls back, with the change."""
    db.session.execute(insert(ENTRIES), [entry(kind, actor, paint, changes, note)])


def record_many(entries: list[dict[str, Any]]) -> None:
    """Add many entries (rows made by `entry`) in one statement sent as a batch."""
    if entries:
        db.session.execute(insert(ENTRIES), entries)


def actor_columns(actor: Actor | None) -> dict[str, ColumnElement[Any]]:
    """Return the actor's columns as SQL literals, for entries made by INSERT ... SELECT."""
    actor = actor or NOBODY
    return {
        "user_id": literal(actor.user_id, ENTRIES.c.user_id.type),
        "username": literal(actor.username, ENTRIES.c.username.type),
        "token_name": literal(actor.token_name, ENTRIES.c.token_name.type),
    }


def new_paint_entries(
    paints: Select[Any], actor: Actor | None, note: str, at: Any, dialect: str
) -> Insert:
    """Return an INSERT ... SELECT of an import entry for each paint that `paints` selects."""
    source = paints.subquery()
    values = {
        "created_at": at,
        "kind": literal("import"),
        **actor_columns(actor),
        "paint_id": source.c.id,
        "paint_brand": source.c.brand,
        "paint_name": source.c.name,
        "paint_code": source.c.color_code,
        "changes": new_paint_changes({name: source.c[name] for name in PAINT_FIELDS}, dialect),
        "note": literal(note[:NOTE_LENGTH]),
    }
    return insert(ENTRIES).from_select(list(values), select(*values.values()))


def new_paint_changes(columns: Mapping[str, ColumnElement[Any]], dialect: str) -> Any:
    """Return SQL that builds a new paint's changes ({field: [null, value]}) from its columns.

    For entries made by INSERT ... SELECT, so an import's rows never come back to Python;
    fields left empty are left out, as `field_changes` does.
    """
    pairs: list[Any] = []
    for name in PAINT_FIELDS:
        column = columns[name]
        if name == "price":
            # As text with its two places: numeric on PostgreSQL, whole cents on SQLite.
            value = (
                cast(column, Text)
                if dialect == "postgresql"
                else func.printf("%.2f", type_coerce(column, Integer) / literal_column("100.0"))
            )
        else:
            value = column
        pair = _json_array(dialect, null(), value)
        pairs += [literal(name), case((column.is_(None), null()), else_=pair)]
    if dialect == "postgresql":
        return func.json_strip_nulls(func.json_build_object(*pairs))
    # A merge patch drops the members whose value is null.
    return func.json_patch("{}", func.json_object(*pairs))


def _json_array(dialect: str, *values: Any) -> Any:
    if dialect == "postgresql":
        return func.json_build_array(*values)
    return func.json_array(*values)
