"""The cache's epoch: every key carries it, and a new one retires the whole cache at once.

A write whose invalidation could not reach Redis starts a new epoch by adding a row to
`cache_epochs`, in the database every instance shares. Each worker's thread reads the
newest epoch every CACHE_EPOCH_POLL_SECONDS, and a worker believes what it read for
CACHE_EPOCH_LEASE_SECONDS from the moment it asked: past that it serves nothing from the
cache until it has read the epoch again. So a write that started an epoch, once it has
waited out the lease, is never served stale by any worker of any instance, even if the
worker that wrote has died since. Since a worker may still use an older epoch within its
lease, a write also retires what it changed under every epoch some worker may hold.
A Redis that restarted (and may have brought back an old snapshot of the cache) starts a
new epoch too, as soon as a worker notices.
"""

import logging
import threading
import time
import weakref
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, select, union
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..extensions import READS_ONLY
from ..forks import reset_in_children
from ..logs import burst_log
from ..models import CacheEpoch, utcnow
from ..resilience.faults import DatabaseUnavailable

logger = logging.getLogger(__name__)
EPOCHS_KEPT = 100
# How far the clocks of the instances (which stamp new epochs) may disagree.
CLOCK_SLACK_SECONDS = 1.0


class Epochs:
    """The epoch this process reads and writes the cache under, kept current by a thread."""

    def __init__(
        self,
        engine: Engine,
        poll_seconds: float,
        server_id: Callable[[], str | None] | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds if lease_seconds is not None else 3 * poll_seconds
        # Which run of the cache server answers (Redis's run_id); None: a cache of this
        # process's own, which never misses an invalidation, and needs no epochs at all.
        self.server_id = server_id
        self.shared = server_id is not None
        self._reset()
        reset_in_children(self._reset)

    def _reset(self) -> None:
        # Also in a forked child: it reads the epoch afresh and watches with a thread of its own.
        self.lock = threading.Lock()
        self.value: int | None = None if self.shared else 0
        self.watching = False
        self.next_read = 0.0
        # Until when (monotonic) the epoch last read may be believed.
        self.believed_until = 0.0
        self.server_seen: str | None = None

    def current(self) -> int | None:
        """Return the epoch to read under now; None while it is unknown or its lease ran out.

        None means: skip the cache, read the database.
        """
        if self.watching and time.monotonic() < self.believed_until:
            return self.value
        if not self.shared:
            return 0
        if not self.watching:
            self._start_watching()
        if self.value is None and time.monotonic() >= self.next_read:
            # Until the thread has read it; at most once a poll period from a request.
            self.next_read = time.monotonic() + self.poll_seconds
            self.refresh()
        return self.value if time.monotonic() < self.believed_until else None

    def known(self) -> int | None:
        """Return the newest epoch this worker knows, believed or not: a write retires under it.

        A process that has read nothing from the cache yet (a command: revoke-token,
        change-password) reads it now; not knowing it, its write counted as one the cache
        missed, and started a new epoch that retired the whole cache of every worker.
        """
        if not self.shared:
            return self.current()
        if self.value is None:
            self.refresh()
        return self.value

    def refresh(self) -> None:
        """Read the newest epoch from the database, and believe it for a lease from now."""
        asked = time.monotonic()
        try:
            with self.engine.connect() as connection:
                # Inside a write of this very process (SQLite's one writer), a read that
                # queued behind it would wait for ever; the last committed epoch will do.
                connection.execution_options(**{READS_ONLY: True})
                newest = connection.execute(select(func.max(CacheEpoch.id))).scalar()
                connection.rollback()
        except (SQLAlchemyError, DatabaseUnavailable) as exc:
            burst_log.note(logger, "epoch-read", "cannot read the cache epoch: %s", exc)
            return
        self.adopt(newest or 0)
        # From when it asked: an epoch committed after the answer is unknown from then on.
        self.believed_until = max(self.believed_until, asked + self.lease_seconds)

    def held(self) -> list[int]:
        """Return every epoch some worker may still read under: those newest within a lease.

        An epoch stays in use until the next one is older than any worker's lease.
        """
        if not self.shared:
            return [0]
        cutoff = utcnow() - timedelta(seconds=self.lease_seconds + CLOCK_SLACK_SECONDS)
        # The newest epoch before the cutoff (0: none, the epoch before the first row), and
        # every one since.
        before = select(func.coalesce(func.max(CacheEpoch.id), 0)).where(
            CacheEpoch.created_at < cutoff
        )
        since = select(CacheEpoch.id).where(CacheEpoch.created_at >= cutoff)
        with self.engine.connect() as connection:
            connection.execution_options(**{READS_ONLY: True})
            found = connection.execute(union(before, since)).scalars().all()
            connection.rollback()
        return sorted(found)

    def wait_out_lease(self, since: float) -> None:
        """Sleep until every worker has read the epoch again since `since` (monotonic)."""
        remaining = since + self.lease_seconds - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def adopt(self, value: int) -> None:
        """Move to `value` if it is newer: a slow read never takes a worker back in time."""
        with self.lock:
            previous = self.value
            if previous is not None and value <= previous:
                return
            self.value = value
        if previous is not None:
            burst_log.note(
                logger,
                "epoch-moved",
                "cache epoch %s -> %s: the whole cache was retired",
                previous,
                value,
                level=logging.INFO,
            )

    def check_server(self) -> None:
        """Start a new epoch when the cache server is another run than the one last seen."""
        current = self.server_id() if self.server_id else None
        if current is None:
            return
        seen, self.server_seen = self.server_seen, current
        if seen is not None and seen != current:
            logger.warning("the cache server restarted: retiring what it may have kept")
            self.start_new("the cache server restarted")

    def start_new(self, reason: str) -> bool:
        """Start a new epoch in a transaction of its own; return False if that failed."""
        try:
            with self.engine.begin() as connection:
                newest = add_epoch(connection, reason)
        except (SQLAlchemyError, DatabaseUnavailable) as exc:
            logger.error("cannot retire the cache (%s): stale entries live until their TTL", exc)
            return False
        self.adopt(newest)
        return True

    def _start_watching(self) -> None:
        # Started in the process that serves: gunicorn forks its workers after the app is built.
        self.watching = True
        thread = threading.Thread(target=_watch, args=(weakref.ref(self),), daemon=True)
        thread.name = "studio-cache-epoch"
        thread.start()


def add_epoch(connection: Connection | Session, reason: str) -> int:
    """Insert a new epoch through `connection`, in its transaction; return its id."""
    newest = connection.execute(
        insert(CacheEpoch).values(reason=reason[:200]).returning(CacheEpoch.id)
    ).scalar_one()
    connection.execute(delete(CacheEpoch).where(CacheEpoch.id <= newest - EPOCHS_KEPT))
    return newest


def _watch(epochs_ref: "weakref.ref[Epochs]") -> None:
    """Refresh the epoch every poll period while its app lives."""
    while True:
        epochs = epochs_ref()
        if epochs is None or not epochs.watching:
            return
        interval = epochs.poll_seconds
        epochs.refresh()
        epochs.check_server()
        del epochs
        time.sleep(interval)
