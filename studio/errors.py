"""App-wide error handlers: JSON under /api, plain pages elsewhere."""

import logging

from flask import Flask, current_app, render_template, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError, TooManyRequests

from . import signals, throttle
from .api.errors import error_response, handle_http_error
from .extensions import db
from .logs import burst_log
from .resilience.faults import (
    CommitOutcomeUnknown,
    DatabaseUnavailable,
    cause,
    is_timeout,
    is_unavailable,
    retry_after,
)

logger = logging.getLogger(__name__)
API_PREFIX = "/api/"
# What an unavailable database raises; handle_database_error tells them from bugs.
UNAVAILABLE = (DBAPIError, DatabaseUnavailable, PoolTimeout)
UNAVAILABLE_MESSAGE = "The database is not available right now; nothing was changed."
# A lock or statement timeout: the server is up, the data was held by another change.
BUSY_MESSAGE = "The database is busy with another change to the same data; nothing was changed."


def register_error_handlers(app: Flask) -> None:
    """Install the handlers for HTTP errors, an unavailable database and unexpected failures."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(InternalServerError, handle_internal_error)
    app.register_error_handler(TooManyRequests, handle_too_many_requests)
    for unavailable in UNAVAILABLE:
        app.register_error_handler(unavailable, handle_database_error)


def handle_http_exception(exc: HTTPException):
    # Routing errors (unknown URL, wrong method) never reach the API blueprint's handler.
    if request.path.startswith(API_PREFIX):
        return handle_http_error(exc)
    return render_error_page("error.html", error=exc), exc.code or 500


def handle_too_many_requests(exc: TooManyRequests):
    """Answer 429 as any HTTP error, always saying when to try again (`Retry-After`)."""
    seconds = throttle.retry_after(exc)
    headers = {"Retry-After": str(seconds)}
    if request.path.startswith(API_PREFIX):
        body, status, _ = handle_http_error(exc)
        return body, status, headers
    page = render_error_page("error.html", error=exc, wait=throttle.describe_wait(seconds))
    return page, 429, headers


def render_error_page(template: str, **context: object) -> str:
    """Render an error page; if the database cannot say who is signed in, without navigation."""
    try:
        return render_template(template, **context)
    except UNAVAILABLE:
        _rollback_quietly()
        return render_without_database(template, **context)


def render_without_database(template: str, **context: object) -> str:
    """Render a page without the context processors and the navigation, which ask the database."""
    page = current_app.jinja_env.get_template(template)
    return page.render(request=request, hide_nav=True, **context)


def handle_internal_error(exc: InternalServerError):
    # Whatever the failed request wrote must not leak into the next one on this session.
    db.session.rollback()
    if request.path.startswith(API_PREFIX):
        return error_response(
            500, "internal_error", "Something went wrong on our side; nothing was changed."
        )
    return render_error_page("error.html", error=exc), 500


def handle_database_error(exc: Exception):
    """Answer 503 with Retry-After when the database is unavailable; any other error is a 500."""
    if not is_unavailable(exc):
        current_app.log_exception((type(exc), exc, exc.__traceback__))
        return handle_internal_error(InternalServerError(original_exception=exc))
    _rollback_quietly()
    described = cause(exc)
    busy = is_timeout(exc)
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
        # A timeout's cause says it all; a traceback is for what may be studio's own fault.
        exc_info=None if busy else exc,
    )
    seconds = retry_after(exc)
    headers = {"Retry-After": str(seconds)}
    unknown = isinstance(exc, CommitOutcomeUnknown)
    if request.path.startswith(API_PREFIX):
        # A write whose outcome is not known has a code of its own: it may have been saved.
        code, message = (
            ("outcome_unknown", str(exc))
            if unknown
            else ("unavailable", BUSY_MESSAGE if busy else UNAVAILABLE_MESSAGE)
        )
        return error_response(503, code, f"{message} Try again in {seconds} s.", headers=headers)
    # Flask-Login's context processor would ask the database who is signed in, again.
    page = render_without_database(
        "unavailable.html", seconds=seconds, outcome_unknown=unknown, busy=busy
    )
    return page, 503, headers


def _rollback_quietly() -> None:
    try:
        db.session.rollback()
    except Exception:  # the connection is gone already; the session is reset all the same
        logger.debug("rollback after a database failure failed", exc_info=True)
