"""The API's error responses: one JSON shape for every failure."""

import logging
from typing import Any

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException

from ..services.errors import ServiceError

logger = logging.getLogger(__name__)

HTTP_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
}
PASSED_ON_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


def error_response(
    status: int,
    code: str,
    message: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[Response, int, dict[str, str]]:
    """Return the JSON error response every API failure shares."""
    body = {"error": {"code": code, "message": message, "fields": fields or {}, **extra}}
    return jsonify(body), status, headers or {}


def handle_service_error(exc: ServiceError) -> tuple[Response, int, dict[str, str]]:
    return error_response(exc.status, exc.code, exc.message, exc.fields, **exc.extra)


def handle_http_error(exc: HTTPException) -> tuple[Response, int, dict[str, str]]:
    status = exc.code or 500
    headers = {name: value for name, value in exc.get_headers() if name in PASSED_ON_HEADERS}
    message = exc.description or exc.name
    if status >= 500:
        message = "Something went wrong on our side; nothing was changed."
    code = HTTP_ERROR_CODES.get(status, exc.name.lower().replace(" ", "_"))
    return error_response(status, code, message, headers=headers)
