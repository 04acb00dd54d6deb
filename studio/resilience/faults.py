"""Which database failures are passing, and which mean the database is unavailable.

A transient failure left nothing behind: the connection dropped or was refused, the
server was starting or shutting down, had no connection slot left, or chose this
transaction as the loser of a serialization conflict or deadlock. Trying again a
moment later is the right answer to all of them, provided the transaction cannot
have committed (studio.resilience.retry decides that).
"""

import math
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLSTATEs of failures that changed nothing and may pass: shutdown and start-up (57P0x),
# no free connection slot (53300, 53400), a connection exception (08xxx), a read-only
# server that was a primary a moment ago (25006), serialization failure and deadlock.
TRANSIENT_SQLSTATES = frozenset(
    {"57P01", "57P02", "57P03", "53300", "53400", "25006", "40001", "40P01"}
)
# Statement and lock timeouts: the server is up but cannot do this now. Retrying would
# wait out the same lock or the same slow plan again, so they are answered 503 at once.
TIMEOUT_SQLSTATES = frozenset({"57014", "55P03"})
READ_ONLY = "25006"
DEFAULT_RETRY_AFTER = 2


class DatabaseUnavailable(Exception):
    """The database cannot be used now; the client should come back after `retry_after` s."""

    def __init__(self, message: str, retry_after: float = DEFAULT_RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BreakerOpen(DatabaseUnavailable):
    """Recent connection attempts failed; studio is not trying again until `retry_after`.

    `outage_seconds` tells how long the database has been failing: a request waits for
    the breaker's next probe only while that is short (a restart), not in a long outage.
    """

    def __init__(self, message: str, retry_after: float, outage_seconds: float) -> None:
        super().__init__(message, retry_after)
        self.outage_seconds = outage_seconds


class NotCommitted(DatabaseUnavailable):
    """The connection dropped during COMMIT and the server says the transaction aborted."""


class CommitOutcomeUnknown(DatabaseUnavailable):
    """The connection dropped during COMMIT and the server could not be asked how it ended."""


def sqlstate(exc: BaseException) -> str | None:
    """Return the SQLSTATE the server sent with this error (SQLAlchemy's or the driver's)."""
    return getattr(getattr(exc, "orig", exc), "pgcode", None)


def is_disconnect(exc: BaseException) -> bool:
    """Return True if the error means the connection itself is gone or never opened."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    # libpq's own errors (refused, timed out, host unknown) come without a SQLSTATE; the
    # errors of SQLite, which has no server to lose, have no SQLSTATE attribute at all.
    original = getattr(exc, "orig", None)
    return isinstance(exc, OperationalError) and getattr(original, "pgcode", False) is None


def is_transient(exc: BaseException) -> bool:
    """Return True if trying the same work again a moment later may well succeed."""
    if isinstance(exc, BreakerOpen | NotCommitted):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    return is_disconnect(exc) or sqlstate(exc) in TRANSIENT_SQLSTATES


def is_unavailable(exc: BaseException) -> bool:
    """Return True if the error means the database cannot serve this request now (a 503)."""
    if isinstance(exc, DatabaseUnavailable | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    # SQLite's "database is locked" is an OperationalError too: busy, not broken.
    return (
        isinstance(exc, OperationalError) or is_transient(exc) or sqlstate(exc) in TIMEOUT_SQLSTATES
    )


def is_timeout(exc: BaseException) -> bool:
    """Return True for a lock or statement timeout, or SQLite's "database is locked"."""
    if sqlstate(exc) in TIMEOUT_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc)


def retry_after(exc: BaseException) -> int:
    """Return the whole seconds a client should wait before trying again."""
    seconds = getattr(exc, "retry_after", DEFAULT_RETRY_AFTER)
    return max(1, math.ceil(seconds))


def cause(exc: BaseException) -> str:
    """Return a one-line description of the failure: its class and the first line of its text."""
    original: Any = getattr(exc, "orig", None) or exc
    first_line = (str(original).strip().splitlines() or [""])[0][:200]
    code = sqlstate(exc)
    name = type(original).__name__
    return f"{name} [{code}]: {first_line}" if code else f"{name}: {first_line}"
