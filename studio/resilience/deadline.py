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
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..logs import burst_log

logger = logging.getLogger(__name__)
CHECK_EVERY_SECONDS = 0.2
T = TypeVar("T")


class Watchdog:
    """Cuts the database connections of threads that ran past their deadlines."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # A forked child starts with no thread of its own watching: the next begin() starts one.
        self.running = False
        self.deadlines: dict[int, float] = {}  # thread -> monotonic deadline
        # id(connection) -> (connection, the thread using it, its operation's own limit,
        # what to tell when it is cut)
        self.connections: dict[int, tuple[Any, int, float | None, Callable[[], None] | None]] = {}

    def begin(self, seconds: float) -> None:
        """Give this thread `seconds` for its database work, from now until end()."""
        if not self.running:
            self._start()
        self.deadlines[threading.get_ident()] = time.monotonic() + seconds

    def end(self) -> None:
        self.deadlines.pop(threading.get_ident(), None)

    def remaining(self) -> float | None:
        """Return the seconds this thread has left, or None if it has no deadline."""
        deadline = self.deadlines.get(threading.get_ident())
        return None if deadline is None else deadline - time.monotonic()

    def attach(
        self,
        connection: Any,
        within: float | None = None,
        on_cut: Callable[[], None] | None = None,
    ) -> None:
        """Watch a connection this thread now uses; for `within` s at most, if given.

        `on_cut` is called when the watchdog had to cut it (its server stopped answering).
        """
        if not self.running:
            self._start()
        limit = time.monotonic() + within if within else None
        self.connections[id(connection)] = (connection, threading.get_ident(), limit, on_cut)

    def detach(self, connection: Any) -> None:
        self.connections.pop(id(connection), None)

    def _start(self) -> None:
        self.running = True
        threading.Thread(target=self._patrol, name="studio-deadline", daemon=True).start()

    def _patrol(self) -> None:
        while True:
            time.sleep(CHECK_EVERY_SECONDS)
            try:
                self._cut_overdue(time.monotonic())
            except Exception:  # the watchdog must outlive anything one connection does
                logger.exception("the deadline watchdog failed to check its connections")

    def _cut_overdue(self, now: float) -> None:
        for key, (connection, thread, limit, on_cut) in list(self.connections.items()):
            deadline = self.deadlines.get(thread)
            due = min(x for x in (limit, deadline, float("inf")) if x is not None)
            if now >= due and self.connections.get(key, (None,))[0] is connection:
                self.connections.pop(key, None)
                if cut(connection) and on_cut is not None:
                    on_cut()


def cut(connection: Any) -> bool:
    """Shut the connection's socket down, so a call blocked on it fails at once."""
    fileno = getattr(connection, "fileno", None)
    if fileno is None:
        return False  # SQLite: nothing to wait for over a network
    try:
        with socket.socket(fileno=os.dup(fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except Exception as exc:  # closed meanwhile (psycopg2 raises InterfaceError), say
        logger.debug("could not cut a database connection: %s", exc)
        return False
    burst_log.note(
        logger, "deadline-cut", "database did not answer in time: cut a connection so it fails"
    )
    return True


watchdog = Watchdog()


def paced(items: Iterable[T], seconds: float) -> Iterator[T]:
    """Yield the items of a streamed answer, giving the wait for each one `seconds` at most.

    A streamed answer outlives its request's deadline; what must not happen is one batch
    waiting forever on a frozen server.
    """
    iterator = iter(items)
    while True:
        watchdog.begin(seconds)
        try:
            item = next(iterator)
        except StopIteration:
            return
        yield item
