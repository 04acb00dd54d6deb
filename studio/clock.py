"""The current request's clock: its start, and its time in the database and the cache.

The bottom floor that the product may add to (the cache backend counts its calls here)
and that studio.observability reads; it imports nothing of studio's.
"""

import time
from contextvars import ContextVar


class RequestClock:
    """When the current request started, and its time in the database and the cache so far."""

    __slots__ = ("started", "db", "cache", "for_admin")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.db = 0.0
        self.cache = 0.0
        self.for_admin = False


# A context variable rather than `g`: every SQL statement and cache call adds to it, and a
# variable lookup costs a fraction of going through Flask's context proxies. None while no
# one measures (outside a request, or with OBSERVABILITY off): adding is then a lookup.
current_clock: ContextVar[RequestClock | None] = ContextVar("studio_request_clock", default=None)


def add_time(kind: str, seconds: float) -> None:
    """Count time spent in the database ("db") or the cache towards the current request."""
    clock = current_clock.get()
    if clock is not None:
        if kind == "db":
            clock.db += seconds
        else:
            clock.cache += seconds


def mark_admin(sender: object = None, **_: object) -> None:
    """Mark the current request as a signed-in admin's, who may see its Server-Timing."""
    clock = current_clock.get()
    if clock is not None:
        clock.for_admin = True
