"""Measuring studio from inside: request timing, slow queries."""

from flask import Flask

from .queries import register_query_timing
from .timing import register_request_timing


def register_observability(app: Flask) -> None:
    """Time every request and every SQL statement of this app."""
    register_request_timing(app)
    register_query_timing(app)
