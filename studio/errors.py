"""App-wide error handlers: JSON under /api, plain pages elsewhere."""

import logging

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from .api.errors import error_response, handle_http_error
from .extensions import db

logger = logging.getLogger(__name__)
API_PREFIX = "/api/"


def register_error_handlers(app: Flask) -> None:
    """Install the handlers for HTTP errors and unexpected failures."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(InternalServerError, handle_internal_error)


def handle_http_exception(exc: HTTPException):
    # Routing errors (unknown URL, wrong method) never reach the API blueprint's handler.
    if request.path.startswith(API_PREFIX):
        return handle_http_error(exc)
    return render_template("error.html", error=exc), exc.code or 500


def handle_internal_error(exc: InternalServerError):
    # Whatever the failed request wrote must not leak into the next one on this session.
    db.session.rollback()
    if request.path.startswith(API_PREFIX):
        return error_response(
            500, "internal_error", "Something went wrong on our side; nothing was changed."
        )
    return render_template("error.html", error=exc), 500
