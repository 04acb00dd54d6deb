"""App-wide error handlers: JSON under /api, plain pages elsewhere."""

import logging

from flask import Flask, current_app, render_template, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError

from . import signals
from .api.errors import error_response, handle_http_error
from .extensions import db
from .logs import burst_log
from .resilience.faults import (
    CommitOutcomeUnknown,
    DatabaseUnavailable,
    cause,
    is_unavailable,
    retry_after,
)

logger = logging.getLogger(__name__)
API_PREFIX = "/api/"
UNAVAILABLE_MESSAGE = "The database is not available right now; nothing was changed."


def register_error_handlers(app: Flask) -> None:
    """Install the handlers for HTTP errors, an unavailable database and unexpected failures."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(InternalServerError, handle_internal_error)
    for unavailable in (DBAPIError, DatabaseUnavailable, PoolTimeout):
        app.register_error_handler(unavailable, handle_database_error)


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


def handle_database_error(exc: Exception):
    """Answer 503 with Retry-After when the database is unavailable; any other error is a 500."""
    if not is_unavailable(exc):
        current_app.log_exception((type(exc), exc, exc.__traceback__))
        return handle_internal_error(InternalServerError(original_exception=exc))
    _rollback_quietly()
    described = cause(exc)
    signals.database_unavailable.send(
        request.endpoint, error=type(getattr(exc, "orig", None) or exc).__name__, cause=described
    )
    burst_log.note(
        logger,
        f"unavailable:{described}",
        "database unavailable: %s %s -> 503 (%s)",
        request.method,
        request.path,
        described,
        exc_info=exc,
    )
    seconds = retry_after(exc)
    headers = {"Retry-After": str(seconds)}
    message = str(exc) if isinstance(exc, CommitOutcomeUnknown) else UNAVAILABLE_MESSAGE
    if request.path.startswith(API_PREFIX):
        return error_response(
            503, "unavailable", f"{message} Try again in {seconds} s.", headers=headers
        )
    # Rendered without the context processors and with no navigation: Flask-Login's would
    # ask the database who is signed in, and fail the same way again.
    page = current_app.jinja_env.get_template("unavailable.html").render(
        request=request,
        seconds=seconds,
        outcome_unknown=isinstance(exc, CommitOutcomeUnknown),
        hide_nav=True,
    )
    return page, 503, headers


def _rollback_quietly() -> None:
    try:
        db.session.rollback()
    except Exception:  # the connection is gone already; the session is reset all the same
        logger.debug("rollback after a database failure failed", exc_info=True)
