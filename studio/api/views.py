"""JSON API views: parse the request, call a service, shape the answer."""

import json
from decimal import Decimal
from typing import Any

from flask import Blueprint, abort, current_app, g, request, url_for
from werkzeug.exceptions import HTTPException

from .. import serializers
from ..resilience.retry import retry_transient
from ..services import (
    activity,
    bulk,
    cached_reads,
    listing,
    paints,
    reorder,
    stats,
    stock,
    vocabularies,
)
from ..services.errors import ServiceError, ValidationError
from ..services.validation import default_reorder_level
from .auth import prefetches, require_token
from .errors import handle_http_error, handle_service_error
from .idempotency import idempotent
from .openapi import openapi_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp.before_request(require_token)
bp.register_error_handler(ServiceError, handle_service_error)
bp.register_error_handler(HTTPException, handle_http_error)


class ForbiddenConstant(ValueError):
    """NaN or Infinity, which Python's json reads but JSON does not have."""


def _refuse_constant(name: str) -> None:
    raise ForbiddenConstant(f"{name} is not a number JSON allows")


def json_body() -> dict[str, Any]:
    """Return the request's JSON object; 415, 400 or 413 when it is not one.

    422 names a field whose text holds a lone surrogate (`"\\ud800"`): JSON may escape
    one, but it is no character, and neither the database nor a page could store it.
    """
    if not request.is_json:
        abort(415, "Send the body as JSON, with 'Content-Type: application/json'.")
    # Kept (cache=True): a retried view and the idempotency key's fingerprint read it again.
    raw = request.get_data()
    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        abort(400, f"The body is not valid JSON: {_json_problem(exc)}.")
    if not isinstance(data, dict):
        abort(400, "The body must be a JSON object.")
    _refuse_surrogates(data)
    return data


def _json_problem(exc: Exception) -> str:
    """Say what is wrong with a body json.loads refused, without Python's words for it."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg.lower()} at line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    if isinstance(exc, ForbiddenConstant):
        return str(exc)
    if "digits" in str(exc):  # int(): more digits than Python converts
        return "a number in it has too many digits"
    return "it could not be read"


def _refuse_surrogates(data: dict[str, Any]) -> None:
    fields = {
        _printable(key): "must not contain lone surrogates (\\ud800 to \\udfff), "
        "which are not characters."
        for key, value in data.items()
        if not _encodable(key) or not _encodable(value)
    }
    if fields:
        raise ValidationError(fields)


def _encodable(value: Any) -> bool:
    """Whether every string in a JSON value is text UTF-8 can write."""
    # A loop, not recursion: the body may nest as deep as json.loads allows.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def _printable(key: str) -> str:
    return key.encode("utf-8", "backslashreplace").decode()


@bp.get("/paints")
@retry_transient
def list_paints():
    paint_filter = listing.PaintFilter.from_args(request.args)
    return serializers.page(listing.list_paints(paint_filter), serializers.paint)


@bp.post("/paints")
@retry_transient
@idempotent
def create_paint():
    paint = paints.create_paint(json_body(), g.api_user.actor)
    location = url_for(".get_paint", paint_id=paint.id)
    return serializers.paint(paint), 201, {"Location": location}


@bp.post("/paints/bulk")
@retry_transient
@idempotent
def bulk_change():
    operations = bulk.parse_operations(json_body())
    outcomes = bulk.apply_operations(operations, g.api_user.actor)
    return {"applied": len(outcomes), "results": [serializers.outcome(o) for o in outcomes]}


@bp.get("/paints/<id:paint_id>")
@prefetches(lambda paint_id: [cached_reads.paint_key(paint_id)])
@retry_transient
def get_paint(paint_id: int):
    return serializers.paint(paints.get_paint_record(paint_id))


@bp.patch("/paints/<id:paint_id>")
@retry_transient
def update_paint(paint_id: int):
    return serializers.paint(paints.update_paint(paint_id, json_body(), g.api_user.actor))


@bp.delete("/paints/<id:paint_id>")
@retry_transient
def delete_paint(paint_id: int):
    paints.delete_paint(paint_id, g.api_user.actor)
    return "", 204


@bp.post("/paints/<id:paint_id>/stock")
@retry_transient
@idempotent
def adjust_stock(paint_id: int):
    delta, reason = stock.validate_adjustment(json_body())
    change = stock.adjust_stock(paint_id, delta, reason, g.api_user.actor)
    body = {
        "paint": serializers.paint(change.paint),
        "movement": serializers.movement(change.movement),
    }
    return body, 201


@bp.get("/paints/<id:paint_id>/movements")
@retry_transient
def list_movements(paint_id: int):
    errors: dict[str, str] = {}
    page, per_page = listing.parse_page(request.args, errors)
    if errors:
        raise ValidationError(errors)
    return serializers.page(stock.list_movements(paint_id, page, per_page), serializers.movement)


@bp.get("/paints/<id:paint_id>/history")
@retry_transient
def paint_history(paint_id: int):
    history_filter = activity.HistoryFilter.from_args(request.args)
    return serializers.page(activity.timeline(paint_id, history_filter), serializers.history_entry)


@bp.get("/activity")
@retry_transient
def list_activity():
    history_filter = activity.HistoryFilter.from_args(request.args)
    return serializers.page(activity.activity(history_filter), serializers.history_entry)


@bp.get("/stats")
@retry_transient
def get_stats():
    return serializers.stats(
        stats.inventory_stats(),
        currency=current_app.config["CURRENCY"],
        default_reorder_level=default_reorder_level(),
    )


@bp.get("/reorder")
@retry_transient
def reorder_list():
    chosen = reorder.ReorderRequest.from_args(request.args)
    return serializers.reorder(reorder.reorder_page(chosen), reorder.brand_totals(chosen.brand))


@bp.get("/vocabularies")
@retry_transient
def list_vocabularies():
    return serializers.vocabulary(vocabularies.current())


@bp.get("/openapi.json")
def openapi():
    return openapi_document()
