"""The paints list's own actions: a quick −1/+1 on a row, and bulk actions on a selection.

Both are forms posted to the list's own address (filters and page in its query), so a
change done goes back to the same list, and a refused one shows that list again.
"""

from dataclasses import replace
from typing import Any

from flask import get_template_attribute, jsonify, render_template, request
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from ..services import bulk, listing, paints, stock
from ..services.errors import Conflict, InsufficientStock, ServiceError, ValidationError
from ..services.listing import PaintFilter
from ..services.validation import MAX_INT, MAX_STOCK, FieldError, clean_int
from .forms import ConfirmForm

ACTIONS = ("adjust_stock", "reorder_level", "color_type", "color_family", "export", "delete")
LABELS = {
    "delta": "Change by",
    "reason": "Reason",
    "reorder_level": "Reorder level",
    "color_type": "Type",
    "color_family": "Family",
    "operations": "The selection",
}
STEPS = {"1": 1, "-1": -1}
STEP_REASON = "Quick {:+d} from the paints list"


def wants_json() -> bool:
    """True when the page's script asked (it updates the row in place)."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def step_stock(form: MultiDict) -> tuple[str, Any]:
    """Move one paint's stock by one; return the message and, for the script, the answer."""
    delta = STEPS.get(form.get("step", ""))
    if delta is None:
        raise ValidationError({"step": "must be 1 or -1."}, "step must be 1 or -1.")
    try:
        paint_id = clean_int(form.get("paint_id"), minimum=1, maximum=MAX_INT, from_text=True)
    except FieldError as exc:
        raise ValidationError({"paint_id": str(exc)}, f"paint_id {exc}") from None
    try:
        change = stock.adjust_stock(paint_id, delta, STEP_REASON.format(delta), current_user.actor)
    except InsufficientStock as exc:
        if delta > 0:
            raise
        name = paints.get_paint_record(paint_id).name
        raise InsufficientStock(
            f"{name} has {exc.extra['current_stock']:,} in stock: it cannot go below 0. "
            "Nothing was changed.",
            exc.fields,
            **exc.extra,
        ) from None
    paint = change.paint
    message = f"{paint.name}: stock {delta:+d}, now {paint.stock:,}."
    badge = get_template_attribute("macros.html", "stock_badge")
    return message, {"message": message, "stock": paint.stock, "badge": str(badge(paint))}


def step_refused(exc: ServiceError):
    """Answer the page's script with the refusal, in the status the rules gave it."""
    return jsonify(message=exc.message, fields=exc.fields), exc.status


def selected_ids(form: MultiDict, list_args: MultiDict) -> list[int]:
    """Return the paints chosen: the ticked rows, or every paint the list's filter matches."""
    limit = bulk.MAX_OPERATIONS
    if form.get("all_matching") == "1":
        paint_filter = replace(PaintFilter.from_args(list_args), after=None)
        paint_ids = listing.matching_ids(paint_filter, limit + 1)
    else:
        try:
            ticked = [
                clean_int(raw, minimum=1, maximum=MAX_INT, from_text=True)
                for raw in form.getlist("ids")
            ]
        except FieldError:
            raise _selection_error("is not a list of paints; reload the page.") from None
        paint_ids = list(dict.fromkeys(ticked))
    if not paint_ids:
        raise _selection_error("is empty: tick the paints to act on first.")
    if len(paint_ids) > limit:
        raise _selection_error(
            f"is more than {limit:,} paints; an action changes at most {limit:,} at once. "
            "Narrow the filter and act on each part."
        )
    return paint_ids


def described(exc: ServiceError) -> str:
    """Return a refusal as one sentence naming each field: "Change by must not be 0."."""
    if not exc.message.startswith("Invalid value for"):
        return exc.message
    named = (f"{LABELS.get(name, name)} {message}" for name, message in exc.fields.items())
    return " ".join(named) + " Nothing was changed."


def _selection_error(message: str) -> ValidationError:
    return ValidationError({"selection": message}, f"The selection {message}")


def chosen_action(form: MultiDict) -> str:
    """Return the bulk action asked for, or raise ValidationError."""
    action = form.get("action", "")
    if action not in ACTIONS:
        message = f"must be one of {', '.join(ACTIONS)}."
        raise ValidationError({"action": message}, f"action {message}")
    return action


def operation_item(action: str, form: MultiDict) -> dict[str, Any]:
    """Return the operation the action applies to each selected paint (values checked later)."""
    if action == "adjust_stock":
        delta, reason = stock.validate_adjustment(
            {"delta": form.get("delta", ""), "reason": form.get("reason")}, from_text=True
        )
        return {"op": "adjust_stock", "delta": delta, "reason": reason}
    if action == "delete":
        return {"op": "delete"}
    if action == "reorder_level":
        try:
            level = clean_int(
                form.get("reorder_level"), minimum=0, maximum=MAX_STOCK, from_text=True
            )
        except FieldError as exc:
            raise ValidationError({"reorder_level": str(exc)}, f"Reorder level {exc}") from None
        return {"op": "update", "fields": {"reorder_level": level}}
    return {"op": "update", "fields": {action: form.get(action) or None}}


def apply_bulk(action: str, paint_ids: list[int], form: MultiDict) -> str:
    """Apply the action to every selected paint in one transaction; return what was done."""
    operations = bulk.for_each(paint_ids, operation_item(action, form))
    try:
        bulk.apply_operations(operations, current_user.actor)
    except (ValidationError, Conflict) as exc:
        raise _named_refusal(exc, paint_ids) from None
    count = _paints(len(paint_ids))
    if action == "adjust_stock":
        return f"Stock {operations[0].delta:+,} on {count}."
    if action == "delete":
        return f"Deleted {count}."
    value = next(iter(operations[0].fields.values()))
    label = {"reorder_level": "Reorder level", "color_type": "Type", "color_family": "Family"}
    shown = "(none)" if value is None else value
    return f"{label[action]} set to {shown} on {count}."


def _named_refusal(
    exc: ValidationError | Conflict, paint_ids: list[int]
) -> ValidationError | Conflict:
    """Say which paints stopped the action, by name, as the operations named them by index.

    A bad value stays a 422; what the paints as they are refuse (stock below 0, a paint
    deleted meanwhile) stays a 409.
    """
    names = {paint.id: paint.name for paint in listing.paints_by_ids(paint_ids)}
    lines = []
    for name, message in exc.fields.items():
        index = int(name[name.index("[") + 1 : name.index("]")]) if "[" in name else None
        who = names.get(paint_ids[index], f"paint {paint_ids[index]}") if index is not None else ""
        lines.append(f"{who}: {message}" if who else message)
    shown = lines[:5] + ([f"and {len(lines) - 5:,} more."] if len(lines) > 5 else [])
    fields, message = {"selection": "; ".join(lines)}, "Nothing was changed: " + " ".join(shown)
    if isinstance(exc, Conflict):
        return Conflict(message, fields)
    return ValidationError(fields, message)


def _paints(count: int) -> str:
    return "1 paint" if count == 1 else f"{count:,} paints"


def confirm_delete(paint_ids: list[int]):
    """Show what a bulk delete would remove, and ask again."""
    chosen = listing.paints_by_ids(paint_ids)
    return render_template(
        "admin/paints/bulk_delete.html", paints=chosen, count=len(chosen), form=ConfirmForm()
    )
