"""Measuring studio from inside: request timing, slow queries."""

from flask import Flask

from .budget import check_connection_budget
from .queries import register_query_timing
from .timing import register_request_timing


def register_observability(app: Flask) -> None:
    """Time every request and SQL statement; check the connection budget at start."""
    register_request_timing(app)
    register_query_timing(app)
    check_connection_budget(app)
