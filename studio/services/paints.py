"""Finding, creating, editing and deleting paints."""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from ..extensions import db
from ..models import Paint, StockMovement, utcnow
from . import cache_scopes, cached_reads, history, transactions
from .errors import Conflict, EditConflict, NotFound, ValidationError, VersionConflict
from .history import Actor
from .planner import refresh_statistics
from .validation import (
    MAX_INT,
    PAINT_RULES,
    FieldError,
    clean_int,
    default_reorder_level,
    validate_paint,
)

BULK_BATCH_SIZE = 2000
# A merged edit whose write met a change that was undone before it could be reported.
MERGE_ATTEMPTS = 3
ZERO_PRICE = Decimal("0.00")


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
    reorder_level: int
    reorder_quantity: int | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, paint: Paint) -> "PaintRecord":
        return cls(*(getattr(paint, name) for name in RECORD_FIELDS))

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "PaintRecord":
        """Return the record of a row that starts with PAINT_COLUMNS."""
        return cls(*row[: len(RECORD_FIELDS)])


RECORD_FIELDS = tuple(column.name for column in fields(PaintRecord))
# Selecting these columns instead of Paint reads a paint without loading it into the
# session (no identity map, no instance state): a listing's rows become records directly.
PAINT_COLUMNS = [getattr(Paint, name) for name in RECORD_FIELDS]
# The same columns of the table itself: a Core statement, which the session runs without
# the ORM's compile and loading steps.
PAINTS = Paint.__table__
PAINT_ROW = select(*(PAINTS.c[name] for name in RECORD_FIELDS))


def get_paint_record(paint_id: int) -> PaintRecord:
    """Return a read-only copy of the paint (cached until it changes), or raise NotFound."""
    return cached_reads.remember(
        cached_reads.paint_key(paint_id), "PAINT_CACHE_TTL", lambda: load_paint_record(paint_id)
    )


def load_paint_record(paint_id: int) -> PaintRecord:
    """Read the paint's row straight into a record, or raise NotFound.

    Its columns alone, without loading a Paint into the session: a read copy needs no
    identity map, and skipping it is most of the cost of an uncached read.
    """
    row = None
    if 0 < paint_id <= MAX_INT:
        row = db.session.execute(PAINT_ROW.where(PAINTS.c.id == paint_id)).first()
    if row is None:
        raise NotFound(f"Paint {paint_id} does not exist.")
    return PaintRecord(*row)


def get_paint(paint_id: int) -> Paint:
    """Return the paint, or raise NotFound."""
    paint = db.session.get(Paint, paint_id) if 0 < paint_id <= MAX_INT else None
    if paint is None:
        raise NotFound(f"Paint {paint_id} does not exist.")
    return paint


def create_paint(
    data: Mapping[str, Any], actor: Actor | None, *, from_text: bool = False
) -> PaintRecord:
    """Create a paint from submitted fields; its opening stock is the first movement.

    Returns the paint as it was saved, copied before the commit: nothing is read back
    afterwards, so a saved paint is never reported as failed.
    """
    fields = validate_paint(data, from_text=from_text)
    paint = Paint(**fields)
    db.session.add(paint)
    with unique_code_guard():
        db.session.flush()
        if paint.stock:
            db.session.add(
                StockMovement(
                    paint_id=paint.id,
                    delta=paint.stock,
                    stock_after=paint.stock,
                    kind="initial",
                    reason="Opening stock",
                    user_id=_user_id(actor),
                )
            )
            db.session.flush()
        saved = PaintRecord.of(paint)
        history.record("create", actor, vars(saved), history.field_changes(None, vars(saved)))
        # Nobody can have cached a paint that did not exist: only listings change.
        transactions.commit(cache_scopes.paint_written(None, None, vars(saved)))
    return saved


def update_paint(
    paint_id: int,
    data: Mapping[str, Any],
    actor: Actor | None,
    *,
    from_text: bool = False,
) -> PaintRecord:
    """Apply an edit to the paint, made on `data["version"]` or on `data["original"]`.

    With `version` any change since, a stock movement included, refuses the edit. With
    `original` (the values the editor started from) see merge_edit. Returns the paint as
    saved, copied before the commit (see create_paint).
    """
    if "original" in data:
        return merge_edit(paint_id, data, actor, from_text=from_text)
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
    before = PaintRecord.of(paint)
    for field, value in fields.items():
        setattr(paint, field, value)
    if "stock" in fields and fields["stock"] != before.stock:
        delta = fields["stock"] - before.stock
        db.session.add(_correction(paint.id, delta, fields["stock"], actor))
    try:
        with unique_code_guard():
            db.session.flush()
            saved = PaintRecord.of(paint)
            _record_edit(actor, vars(before), saved, fields)
            # The version check makes `before` what this write changed.
            retire = cache_scopes.paint_written(paint_id, vars(before), vars(saved))
            transactions.commit(retire)
    except StaleDataError:
        # Another admin saved (or stock moved) between our read and our write.
        db.session.rollback()
        raise _version_conflict(get_paint(paint_id)) from None
    return saved


def merge_edit(
    paint_id: int, data: Mapping[str, Any], actor: Actor | None, *, from_text: bool = False
) -> PaintRecord:
    """Write the fields the edit changes from `data["original"]`, unless others changed them.

    Fields whose value equals the original are not written, so what others changed in
    them since stays. A changed field is refused (EditConflict, nothing written) only if
    someone else changed it too, to another value. Stock is a correction of the stock the
    editor saw: any movement since, a sale say, is a conflict on stock. The check and the
    write are one conditional UPDATE, race-free without locks, as in adjust_stock.
    """
    changes = dict(data)
    errors: dict[str, str] = {}
    if "version" in changes:
        errors["version"] = "must not be sent with original; send one of them."
        changes.pop("version")
    fields: dict[str, Any] = {}
    touched = _touched(changes)
    try:
        fields = validate_paint(touched, partial=True, from_text=from_text)
    except ValidationError as exc:
        errors.update(exc.fields)
    if not from_text:
        # JSON holds to the OpenAPI document: every value sent takes its field's form, also
        # one sent back unchanged. A form's started-from values are studio's own, signed.
        errors.update(_untouched_errors(changes, touched))
    try:
        original = _clean_original(changes["original"], fields, every=not from_text)
    except FieldError as exc:
        errors["original"] = str(exc)
    if errors:
        raise ValidationError(errors)
    edited = {name: value for name, value in fields.items() if value != original[name]}
    if not edited:
        return PaintRecord.of(get_paint(paint_id))
    for _ in range(MERGE_ATTEMPTS):
        saved = _write_edited(paint_id, edited, original, actor)
        if saved is not None:
            return saved
        conflict = _conflict(get_paint(paint_id), edited, original)
        if conflict:
            raise conflict
    # Changed and changed back between each write and read: let the editor look again.
    raise _version_conflict(get_paint(paint_id))


def _touched(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Return the submitted fields, less those sent back exactly as the edit started.

    A field left as it was is not written, so it is not checked either: a type renamed
    in the lists since the form was opened must not refuse an edit of the price.
    """
    original = changes.get("original")
    started = original if isinstance(original, Mapping) else {}
    return {
        name: value
        for name, value in changes.items()
        if name != "original" and not (name in started and value == started[name])
    }


def _untouched_errors(changes: Mapping[str, Any], touched: Mapping[str, Any]) -> dict[str, str]:
    """Return what is wrong with the JSON fields sent back as they started, by their own rules.

    They are not checked against the lists, but a value no field takes (`"stock": false`,
    equal to 0 in Python) is refused as it would be if it had changed.
    """
    errors = {}
    for name in changes.keys() - touched.keys() - {"original"}:
        rule = PAINT_RULES.get(name)
        try:
            if rule is not None:
                rule(changes[name], False)
        except FieldError as exc:
            errors[name] = str(exc)
    return errors


def _clean_original(
    original: Any, fields: Mapping[str, Any], *, every: bool = False
) -> dict[str, Any]:
    """Return the original values of the edited fields, cleaned as the fields are.

    `every` checks the values of the fields not edited too (by their rules, not the lists).
    """
    if not isinstance(original, Mapping):
        raise FieldError("must be an object of the values the edit started from.")
    unknown = sorted(str(name) for name in original if name not in PAINT_RULES)
    if unknown:
        raise FieldError(f"names unknown fields: {', '.join(unknown)}.")
    missing = [name for name in fields if name not in original]
    if missing:
        raise FieldError(f"must give the value the edit started from of: {', '.join(missing)}.")
    cleaned = {}
    for name in original if every else fields:
        try:
            cleaned[name] = PAINT_RULES[name](original[name], False)
        except FieldError as exc:
            raise FieldError(f"{name} {exc}") from None
    return {name: cleaned[name] for name in fields}


def _write_edited(
    paint_id: int, edited: Mapping[str, Any], original: Mapping[str, Any], actor: Actor | None
) -> PaintRecord | None:
    """Write the edited fields if none of them clashes; return the paint, None if one did."""
    # Read for the history entry, without a lock: the UPDATE keeps each edited field at its
    # original value or one someone else already set to the edit's, and this tells which.
    before = db.session.execute(PAINT_ROW.where(PAINTS.c.id == paint_id)).first()
    conditions = [Paint.id == paint_id]
    for name, value in edited.items():
        column = getattr(Paint, name)
        if name == "stock":
            conditions.append(column == original[name])
        else:
            conditions.append(
                or_(column.is_not_distinct_from(original[name]), column.is_not_distinct_from(value))
            )
    statement = (
        update(Paint)
        .where(*conditions)
        .values(**edited, version=Paint.version + 1, updated_at=utcnow())
        .returning(*PAINT_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    with unique_code_guard():
        row = db.session.execute(statement).one_or_none()
        if row is None:
            db.session.rollback()
            return None
        saved = PaintRecord(**row._asdict())
        if "stock" in edited:
            delta = edited["stock"] - original["stock"]
            db.session.add(_correction(paint_id, delta, saved.stock, actor))
            db.session.flush()
        was = before._asdict() if before is not None else {}
        already = {name for name, value in edited.items() if was.get(name, original[name]) == value}
        _record_edit(actor, {**original, **{name: edited[name] for name in already}}, saved, edited)
        # Each edited field held its original value or the edit's (the UPDATE's condition):
        # the listings of both move on.
        was = {**vars(saved), **{name: original[name] for name in edited}}
        transactions.commit(cache_scopes.paint_written(paint_id, was, vars(saved)))
    return saved


def _conflict(
    current: Paint, edited: Mapping[str, Any], original: Mapping[str, Any]
) -> EditConflict | None:
    """Return the conflict the failed write met, None if nothing clashes any more."""
    clashes = {}
    for name, value in edited.items():
        now = getattr(current, name)
        if now != original[name] and (name == "stock" or now != value):
            clashes[name] = {"original": original[name], "current": now}
    if not clashes:
        return None
    return EditConflict(
        f"Paint {current.id} was changed by someone else in what this edit changes "
        f"({', '.join(clashes)}); nothing was saved.",
        {
            name: f"was changed by someone else meanwhile: it is now {_shown(values['current'])} "
            f"(it was {_shown(values['original'])} when this edit began)."
            for name, values in clashes.items()
        },
        current=PaintRecord.of(current),
        edited=frozenset(edited),
        conflicts=clashes,
    )


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "empty"
    if isinstance(value, str):
        return f"“{value if len(value) <= 80 else value[:79] + '…'}”"
    return str(value)


def _record_edit(
    actor: Actor | None, before: Mapping[str, Any], saved: PaintRecord, names: Iterable[str]
) -> None:
    changes = history.field_changes(before, vars(saved), names)
    if changes:
        history.record("edit", actor, vars(saved), changes)


def _correction(paint_id: int, delta: int, stock_after: int, actor: Actor | None) -> StockMovement:
    return StockMovement(
        paint_id=paint_id,
        delta=delta,
        stock_after=stock_after,
        kind="correction",
        reason="Stock corrected on edit",
        user_id=_user_id(actor),
    )


def _user_id(actor: Actor | None) -> int | None:
    return actor.user_id if actor else None


def delete_paint(paint_id: int, actor: Actor | None) -> None:
    """Delete the paint and its stock movements; its history stays, naming it."""
    statement = delete(Paint).where(Paint.id == paint_id).returning(*PAINT_COLUMNS)
    deleted = db.session.execute(statement).first()
    if deleted is None:
        db.session.rollback()
        raise NotFound(f"Paint {paint_id} does not exist.")
    values = deleted._asdict()
    history.record("delete", actor, values, history.field_changes(values, None))
    transactions.commit(cache_scopes.paint_written(paint_id, values, None))


def bulk_create_paints(
    rows: Iterable[Mapping[str, Any]],
    *,
    kind: str,
    reason: str,
    actor: Actor | None,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Insert already validated paints in batches, in one transaction; return how many.

    Each gets a stock movement of `kind` (if stocked) and an import entry noting `reason`.
    """
    count = 0
    batch: list[Mapping[str, Any]] = []
    with unique_code_guard():
        for row in rows:
            batch.append(row)
            if len(batch) == BULK_BATCH_SIZE:
                count += _insert_batch(batch, kind, reason, actor)
                batch = []
                if on_batch:
                    on_batch(count)
        if batch:
            count += _insert_batch(batch, kind, reason, actor)
            if on_batch:
                on_batch(count)
        refresh_statistics()
        transactions.commit(cached_reads.paints_changed())
    return count


def _insert_batch(
    batch: list[Mapping[str, Any]], kind: str, reason: str, actor: Actor | None
) -> int:
    # Every row gets every key, so the driver can send a batch as one statement.
    defaults = {
        **dict.fromkeys(PAINT_RULES),
        "stock": 0,
        "price": ZERO_PRICE,
        "reorder_level": default_reorder_level(),
    }
    rows = [{**defaults, **row} for row in batch]
    statement = insert(Paint).returning(Paint.id, Paint.stock, sort_by_parameter_order=True)
    inserted = db.session.execute(statement, rows).all()
    movements = [
        {
            "paint_id": paint_id,
            "delta": stock,
            "stock_after": stock,
            "kind": kind,
            "reason": reason,
            "user_id": _user_id(actor),
        }
        for paint_id, stock in inserted
        if stock
    ]
    if movements:
        db.session.execute(insert(StockMovement), movements)
    history.record_many(
        [
            history.entry(
                "import", actor, {**row, "id": paint_id}, history.field_changes(None, row), reason
            )
            for row, (paint_id, _) in zip(rows, inserted, strict=True)
        ]
    )
    return len(inserted)


def _version_conflict(paint: Paint) -> VersionConflict:
    return VersionConflict(
        f"Paint {paint.id} was changed by someone else (now version {paint.version}); "
        "reload it and apply your change again.",
        current_version=paint.version,
    )


@contextmanager
def unique_code_guard() -> Iterator[None]:
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
