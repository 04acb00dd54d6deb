"""What a request may send: a host name, a URL of MAX_URL_LENGTH at most, a body within its limit.

A Host header that is no host name (an empty label, a label over 63 characters, punycode
that does not decode) is a 400 before the app sees it: werkzeug cannot build URLs for such
a host, so every page that links anywhere, error pages included, would fail with a 500.

A URL longer than any studio makes is a 414 (JSON under /api); gunicorn refuses longer
request lines still (limit_request_line in gunicorn.conf.py) with a short page of its own.

A body sent with `Transfer-Encoding: chunked` has no Content-Length; the server
(gunicorn) decodes the chunks as the app reads them. A malformed chunk then raises the
server's own exception from inside whatever read the body (CSRFProtect, the limiter, a
view), which would be a 500; and werkzeug reads such a body only up to
MAX_CONTENT_LENGTH and stops there, so a longer one was cut short and accepted.
"""

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, RequestURITooLarge

logger = logging.getLogger(__name__)
# The longest URL studio makes: every text filter at its longest, each character
# percent-encoded as 4 UTF-8 bytes (about 4,800), a cursor (1,000) and the rest. gunicorn's
# limit_request_line (8,190) leaves room above it for this JSON answer.
MAX_URL_LENGTH = 6144
MALFORMED = "The request body is not valid chunked encoding (Transfer-Encoding: chunked)."


# Underscores too: container and service names have them (studio_web:8000).
LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
HOST = re.compile(rf"((?:{LABEL}\.)*{LABEL}\.?|\[[0-9A-Fa-f:.]+\])(?::\d{{1,5}})?")
BAD_HOST = "The Host header is not a host name."


def is_host_name(host: str) -> bool:
    """Tell whether a Host header names a host (letters, digits, - and _; valid punycode)."""
    match = HOST.fullmatch(host)
    if match is None:
        return False
    try:
        match.group(1).encode("ascii").decode("idna")
    except UnicodeError:
        return False
    return True


class MalformedBody(BadRequest):
    description = MALFORMED


class UnsizedBody:
    """The body of a request without Content-Length, read within the request's limit."""

    def __init__(self, stream: Any, limit: Callable[[], int | None]) -> None:
        self.stream = stream
        self.limit = limit
        self.read_so_far = 0

    def read(self, size: int | None = -1) -> bytes:
        data = self._call(self.stream.read, -1 if size is None else size)
        self._count(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self._call(self.stream.readline, -1 if size is None else size)
        self._count(data)
        return data

    def _call(self, read: Callable[[int], bytes], size: int) -> bytes:
        try:
            return read(size) if size >= 0 else read()
        except Exception as exc:
            # Only the client decides what a body holds: its failure is a bad request.
            logger.info("refused a malformed request body: %s", exc)
            raise MalformedBody() from None

    def _count(self, data: bytes) -> None:
        limit = self.limit()
        if not data or limit is None:
            return
        self.read_so_far += len(data)
        # werkzeug stops reading at the limit; one byte more tells a body that goes on.
        if self.read_so_far > limit or (
            self.read_so_far == limit and self._call(self.stream.read, 1)
        ):
            raise RequestEntityTooLarge(
                f"The body is over {limit:,} bytes, the most this address takes; "
                "nothing was changed."
            )


class GuardRequests:
    """WSGI middleware: refuse a Host that is no host name; guard a body without a length."""

    def __init__(self, wsgi_app: Callable) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        host = environ.get("HTTP_HOST")
        if host is not None and not is_host_name(host):
            return refuse_host(environ, start_response)
        # Only a server that ends the body itself (wsgi.input_terminated) lets it be read.
        if not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            environ["wsgi.input"] = UnsizedBody(environ["wsgi.input"], request_limit)
        return self.wsgi_app(environ, start_response)


def refuse_host(environ: dict[str, Any], start_response: Callable) -> list[bytes]:
    """Answer 400 without the app, in JSON under /api, in plain text elsewhere."""
    if environ.get("PATH_INFO", "").startswith("/api/"):
        error = {"code": "bad_request", "message": BAD_HOST, "fields": {}}
        body, kind = json.dumps({"error": error}).encode(), "application/json"
    else:
        body, kind = BAD_HOST.encode(), "text/plain; charset=utf-8"
    start_response(
        "400 Bad Request",
        [
            ("Content-Type", kind),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
    return [body]


def request_limit() -> int | None:
    # The request's own limit: the import page takes more than MAX_CONTENT_LENGTH.
    return request.max_content_length


def register_request_limits(app: Flask) -> None:
    """Refuse an over-long URL (414), a malformed body (400) and one over its limit (413)."""
    app.wsgi_app = GuardRequests(app.wsgi_app)

    @app.before_request
    def refuse_long_urls() -> None:
        if len(request.environ.get("PATH_INFO", "")) + len(request.query_string) > MAX_URL_LENGTH:
            raise RequestURITooLarge(
                f"The address is longer than {MAX_URL_LENGTH} characters, "
                "longer than any studio makes."
            )
