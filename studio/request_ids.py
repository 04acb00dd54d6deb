"""Every request's id: the router's when it sent a sane one, else a new one.

Heroku's router sends `X-Request-ID` (its own, or the client's when that is 20-200 of
`A-Za-z0-9+/=-`), Railway's edge `X-Railway-Request-Id`; with either, studio's log lines
match the platform's. The id is answered in `X-Request-ID`, which gunicorn's access log
line shows, and is on every log record made while the request is served (studio.logs).

It is a WSGI middleware rather than Flask hooks because it runs on every request: it
reads one or two environ keys, sets a context variable and adds one header.
"""

import os
import re
from contextvars import ContextVar

from flask import Flask

HEADER = "X-Request-ID"
# The platforms' headers, as WSGI names them. A client may send its own X-Request-ID, as
# Heroku's router lets it: the id is for finding log lines, never for trusting anything.
ROUTER_HEADERS = ("HTTP_X_REQUEST_ID", "HTTP_X_RAILWAY_REQUEST_ID")
MAX_LENGTH = 200
# What can go into a log line and a header as it is: no spaces, quotes or control characters.
SANE = re.compile(rf"[A-Za-z0-9+/=._:-]{{1,{MAX_LENGTH}}}")

_current: ContextVar[str | None] = ContextVar("studio_request_id", default=None)


def current_request_id() -> str | None:
    """Return the id of the request being served in this context, if any."""
    return _current.get()


def request_id_from(environ: dict) -> str:
    """Return the router's request id when it is sane, else a new one (32 random hex digits)."""
    for name in ROUTER_HEADERS:
        sent = environ.get(name)
        if sent and len(sent) <= MAX_LENGTH and SANE.fullmatch(sent):
            return sent
    # 128 random bits, as in a UUID 4, at a fifth of uuid4()'s cost.
    return os.urandom(16).hex()


class RequestIds:
    """WSGI middleware: set the request's id for its log records and answer it."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        request_id = request_id_from(environ)

        def start_with_id(status, headers, exc_info=None):
            headers.append((HEADER, request_id))
            # exc_info only when there is one, as a WSGI app calls it.
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        token = _current.set(request_id)
        try:
            return self.app(environ, start_with_id)
        finally:
            # A streamed body (the CSV export) is sent after this: its records carry no id.
            _current.reset(token)


def register_request_ids(app: Flask) -> None:
    """Wrap the app, outermost, so that every answer and log record has the request's id."""
    app.wsgi_app = RequestIds(app.wsgi_app)
