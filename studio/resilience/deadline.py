"""A deadline for a request's database work, enforced from outside the request's thread.

PostgreSQL's statement and lock timeouts end slow statements, but only a server that
runs can enforce them: a frozen server (or a half-dead network path) leaves the worker
blocked in libpq until gunicorn kills it. A watchdog thread in each process shuts down
the socket of a connection that is in use past its thread's deadline (the request's, from
its start to its end) or past its operation's own limit (a checkout's ping); libpq then
fails at once, and the request is answered 503 instead of being killed.
"""

import logging
import os
import socket
import threading
import time
from typing import Any

from ..logs import burst_log

logger = logging.getLogger(__name__)
CHECK_EVERY_SECONDS = 0.2


class Watchdog:
    """Cuts the database connections of threads that ran past their deadlines."""

    def __init__(self) -> None:
        self.deadlines: dict[int, float] = {}  # thread -> monotonic deadline
        self.connections: dict[int, tuple[Any, float | None]] = {}  # thread -> (conn, limit)
        self.started_in = 0

    def begin(self, seconds: float) -> None:
        """Give this thread `seconds` for its database work, from now until end()."""
        self._ensure_running()
        self.deadlines[threading.get_ident()] = time.monotonic() + seconds

    def end(self) -> None:
        self.deadlines.pop(threading.get_ident(), None)

    def remaining(self) -> float | None:
        """Return the seconds this thread has left, or None if it has no deadline."""
        deadline = self.deadlines.get(threading.get_ident())
        return None if deadline is None else deadline - time.monotonic()

    def attach(self, connection: Any, within: float | None = None) -> None:
        """Watch the connection this thread now uses; `within` s at most, if given."""
        self._ensure_running()
        limit = time.monotonic() + within if within else None
        self.connections[threading.get_ident()] = (connection, limit)

    def detach(self) -> None:
        self.connections.pop(threading.get_ident(), None)

    def _ensure_running(self) -> None:
        # Started in the process that serves: gunicorn forks its workers after import.
        pid = os.getpid()
        if self.started_in != pid:
            self.started_in = pid
            self.deadlines, self.connections = {}, {}
            threading.Thread(target=self._patrol, name="studio-deadline", daemon=True).start()

    def _patrol(self) -> None:
        pid = os.getpid()
        while self.started_in == pid:
            time.sleep(CHECK_EVERY_SECONDS)
            now = time.monotonic()
            for thread, (connection, limit) in list(self.connections.items()):
                deadline = self.deadlines.get(thread)
                cut_at = min(x for x in (limit, deadline, float("inf")) if x is not None)
                if now >= cut_at and self.connections.get(thread, (None,))[0] is connection:
                    self.connections.pop(thread, None)
                    cut(connection)


def cut(connection: Any) -> None:
    """Shut the connection's socket down, so a call blocked on it fails at once."""
    fileno = getattr(connection, "fileno", None)
    if fileno is None:
        return  # SQLite: nothing to wait for over a network
    try:
        with socket.socket(fileno=os.dup(fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError as exc:
        logger.debug("could not cut a database connection: %s", exc)
        return
    burst_log.note(
        logger, "deadline-cut", "database did not answer in time: cut a connection so it fails"
    )


watchdog = Watchdog()
