"""Several changes to paints as one: all of them, or none (the API's POST /paints/bulk).

Every operation is checked before anything is written, and every bad one is named
(`operations[3].delta`, 422), so that a script learns all its mistakes at once. The paints
named are then locked (SELECT ... FOR UPDATE, in id order so that two bulk writes never
deadlock) and the operations are checked against them in order: a paint deleted by an
earlier operation, a version that is not the paint's, stock going below 0 (409, each
named too). Only when all pass are they applied, in one transaction, through the same
rules as one at a time.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from ..extensions import db
from ..models import Paint, utcnow
from . import cache_scopes, history, transactions
from .errors import Conflict, ValidationError
from .history import Actor
from .paints import PAINT_COLUMNS, PaintRecord, delete_paint, unique_code_guard
from .stock import StockChange, adjust_stock, validate_adjustment
from .validation import MAX_INT, MAX_STOCK, FieldError, clean_int, validate_paint

MAX_OPERATIONS = 1000
KINDS = ("adjust_stock", "update", "delete")
KEYS = {
    "adjust_stock": {"op", "paint_id", "delta", "reason"},
    "update": {"op", "paint_id", "fields", "version"},
    "delete": {"op", "paint_id"},
}


@dataclass(frozen=True)
class Operation:
    """One checked operation: what to do to which paint."""

    kind: str
    paint_id: int
    delta: int = 0
    reason: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    version: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What an applied operation left: the paint (and movement), or the id it deleted."""

    operation: Operation
    paint: PaintRecord | None = None
    change: StockChange | None = None


def parse_operations(data: Mapping[str, Any]) -> list[Operation]:
    """Return the operations of a bulk request, or raise ValidationError naming each bad one."""
    unknown = {name: "is not a known field." for name in data if name != "operations"}
    listed = data.get("operations")
    if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_OPERATIONS:
        raise ValidationError(
            {**unknown, "operations": f"must be a list of 1 to {MAX_OPERATIONS:,} operations."}
        )
    errors: dict[str, str] = dict(unknown)
    operations = []
    for index, item in enumerate(listed):
        try:
            operations.append(_operation(item))
        except ValidationError as exc:
            named = exc.fields.items()
            errors.update({f"operations[{index}]{_path(name)}": m for name, m in named})
    if errors:
        raise ValidationError(errors)
    return operations


def for_each(paint_ids: list[int], item: Mapping[str, Any]) -> list[Operation]:
    """Return the same operation for each paint; a bad value is named once, as the item's.

    An admin's bulk action sets one value on every selected paint, so `fields.reorder_level`
    of operation 0 is the form's `reorder_level`.
    """
    listed = [{**item, "paint_id": paint_id} for paint_id in paint_ids]
    try:
        return parse_operations({"operations": listed})
    except ValidationError as exc:
        named = {}
        for name, message in exc.fields.items():
            field_name = name.partition("].")[2].removeprefix("fields.") or "operations"
            named.setdefault(field_name, message)
        raise ValidationError(named) from None


def _path(name: str) -> str:
    return "" if name == "" else f".{name}"


def _operation(item: Any) -> Operation:
    if not isinstance(item, dict):
        raise ValidationError({"": "must be an object."})
    kind = item.get("op")
    if kind not in KINDS:
        raise ValidationError({"op": f"must be one of {', '.join(KINDS)}."})
    errors = {name: "is not a known field." for name in item if name not in KEYS[kind]}
    paint_id, found = 0, {}
    try:
        paint_id = clean_int(item.get("paint_id"), minimum=1, maximum=MAX_INT)
    except FieldError as exc:
        errors["paint_id"] = str(exc)
    try:
        found = _checked(kind, item)
    except ValidationError as exc:
        errors.update(exc.fields)
    if errors:
        raise ValidationError(errors)
    return Operation(kind, paint_id, **found)


def _checked(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    """Return the operation's checked values besides its kind and paint."""
    if kind == "adjust_stock":
        delta, reason = validate_adjustment({k: item.get(k) for k in ("delta", "reason")})
        return {"delta": delta, "reason": reason}
    if kind == "delete":
        return {}
    errors: dict[str, str] = {}
    fields = item.get("fields")
    version = None
    if "version" in item:
        try:
            version = clean_int(item["version"], minimum=1, maximum=MAX_INT)
        except FieldError as exc:
            errors["version"] = str(exc)
    if not isinstance(fields, dict) or not fields:
        raise ValidationError({**errors, "fields": "must be an object of the fields to set."})
    if "stock" in fields:
        errors["fields.stock"] = "is changed with an adjust_stock operation, which records why."
    try:
        cleaned = validate_paint({k: v for k, v in fields.items() if k != "stock"}, partial=True)
    except ValidationError as exc:
        errors.update({f"fields.{name}": message for name, message in exc.fields.items()})
    if errors:
        raise ValidationError(errors)
    return {"fields": cleaned, "version": version}


def apply_operations(operations: list[Operation], actor: Actor | None) -> list[Outcome]:
    """Apply every operation in one transaction, or none: raise Conflict naming each that
    the paints as they are refuse (unknown, another version, stock out of bounds)."""
    with transactions.one_transaction():
        current = _lock({operation.paint_id for operation in operations})
        _refuse_what_cannot_apply(operations, current)
        return [
            _apply_named(index, operation, actor, current)
            for index, operation in enumerate(operations)
        ]


def _apply_named(
    index: int, operation: Operation, actor: Actor | None, current: dict[int, PaintRecord]
) -> Outcome:
    """Apply one operation; a colour code taken in its brand is refused naming the operation."""
    if operation.kind != "update":  # only an update can set a colour code
        return _apply(operation, actor, current)
    try:
        with unique_code_guard():
            return _apply(operation, actor, current)
    except Conflict as exc:
        name = f"operations[{index}]"
        fields = {f"{name}.fields.{field}": message for field, message in exc.fields.items()}
        raise Conflict(f"Nothing was changed: {name}: {exc.message}", fields) from None


def _lock(paint_ids: set[int]) -> dict[int, PaintRecord]:
    """Lock the paints, in id order; return each one as it is."""
    rows = db.session.execute(
        select(*PAINT_COLUMNS)
        .where(Paint.id.in_(sorted(paint_ids)))
        .order_by(Paint.id)
        .with_for_update()
    )
    return {row.id: PaintRecord(**row._asdict()) for row in rows}


def _refuse_what_cannot_apply(operations: list[Operation], current: dict[int, PaintRecord]) -> None:
    """Follow the operations through the locked paints; raise naming each that would fail."""
    stocks = {paint_id: paint.stock for paint_id, paint in current.items()}
    versions = {paint_id: paint.version for paint_id, paint in current.items()}
    errors: dict[str, str] = {}
    for index, operation in enumerate(operations):
        name = f"operations[{index}]"
        paint_id = operation.paint_id
        if paint_id not in stocks:
            errors[f"{name}.paint_id"] = (
                f"paint {paint_id} does not exist (or an earlier operation deleted it)."
            )
            continue
        if operation.version is not None and operation.version != versions[paint_id]:
            errors[f"{name}.version"] = f"paint {paint_id} is at version {versions[paint_id]} now."
        if operation.kind == "delete":
            del stocks[paint_id]
            continue
        versions[paint_id] += 1
        if operation.kind == "adjust_stock":
            after = stocks[paint_id] + operation.delta
            if not 0 <= after <= MAX_STOCK:
                bound = "below 0" if after < 0 else f"above {MAX_STOCK:,}"
                errors[f"{name}.delta"] = (
                    f"would take stock of paint {paint_id} {bound}; it is {stocks[paint_id]} "
                    "at this point."
                )
            else:
                stocks[paint_id] = after
    if errors:
        named = ", ".join(sorted(errors))
        raise Conflict(f"Nothing was changed: the paints are not as {named} expects.", errors)


def _apply(operation: Operation, actor: Actor | None, current: dict[int, PaintRecord]) -> Outcome:
    """Apply one operation; `current` follows each paint as the operations change it."""
    if operation.kind == "adjust_stock":
        change = adjust_stock(operation.paint_id, operation.delta, operation.reason, actor)
        current[operation.paint_id] = change.paint
        return Outcome(operation, change.paint, change)
    if operation.kind == "delete":
        delete_paint(operation.paint_id, actor)
        return Outcome(operation)
    statement = (
        update(Paint)
        .where(Paint.id == operation.paint_id)
        .values(**operation.fields, version=Paint.version + 1, updated_at=utcnow())
        .returning(*PAINT_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    paint = PaintRecord(**db.session.execute(statement).one()._asdict())
    before, current[operation.paint_id] = current[operation.paint_id], paint
    changes = history.field_changes(vars(before), vars(paint), operation.fields)
    history.record("edit", actor, vars(paint), changes)
    # `before` was read under the lock: what this write changed.
    transactions.commit(cache_scopes.paint_written(operation.paint_id, vars(before), vars(paint)))
    return Outcome(operation, paint)
