"""The cache's epoch: every key carries it, and a new one retires the whole cache at once.

A write whose invalidation could not reach Redis starts a new epoch by adding a row to
`cache_epochs`, in the database every instance shares. Each worker's thread reads the
newest epoch every CACHE_EPOCH_POLL_SECONDS, so once Redis answers again no worker of
any instance serves what the write changed, for longer than that, even if the worker
that wrote has died since. Epochs start only when Redis fails, so they are rare.
"""

import logging
import os
import threading
import time
import weakref

from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..logs import burst_log
from ..models import CacheEpoch
from ..resilience.faults import DatabaseUnavailable

logger = logging.getLogger(__name__)
EPOCHS_KEPT = 100


class Epochs:
    """The epoch this process reads and writes the cache under, kept current by a thread."""

    def __init__(self, engine: Engine, poll_seconds: float, shared: bool) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        # A cache of this process's own (no Redis) never misses an invalidation.
        self.shared = shared
        self.value: int | None = None if shared else 0
        self.watching_in = 0

    def current(self) -> int | None:
        """Return the epoch to use now; None while it is unknown (then the cache is skipped)."""
        if not self.shared:
            return 0
        if self.watching_in != os.getpid():
            self._start_watching()
        if self.value is None:
            self.refresh()
        return self.value

    def refresh(self) -> None:
        """Read the newest epoch from the database."""
        try:
            with self.engine.connect() as connection:
                newest = connection.execute(select(func.max(CacheEpoch.id))).scalar()
                connection.rollback()
        except (SQLAlchemyError, DatabaseUnavailable) as exc:
            burst_log.note(logger, "epoch-read", "cannot read the cache epoch: %s", exc)
            return
        self.adopt(newest or 0)

    def adopt(self, value: int) -> None:
        if value != self.value:
            if self.value is not None:
                logger.info("cache epoch %s -> %s: the whole cache was retired", self.value, value)
            self.value = value

    def start_new(self, reason: str) -> bool:
        """Start a new epoch in a transaction of its own; return False if that failed."""
        try:
            with self.engine.begin() as connection:
                newest = add_epoch(connection, reason)
        except (SQLAlchemyError, DatabaseUnavailable) as exc:
            logger.error(
                "cannot retire the cache (%s): it may serve stale data until TTLs end", exc
            )
            return False
        self.adopt(newest)
        return True

    def _start_watching(self) -> None:
        # Started in the process that serves: gunicorn forks its workers after the app is built.
        self.watching_in = os.getpid()
        self.value = None
        thread = threading.Thread(
            target=_watch, args=(weakref.ref(self), self.watching_in), daemon=True
        )
        thread.name = "studio-cache-epoch"
        thread.start()


def add_epoch(connection: Session | object, reason: str) -> int:
    """Insert a new epoch through `connection` (a Connection or Session); return its id."""
    newest = connection.execute(  # type: ignore[attr-defined]
        insert(CacheEpoch).values(reason=reason[:200]).returning(CacheEpoch.id)
    ).scalar_one()
    connection.execute(  # type: ignore[attr-defined]
        delete(CacheEpoch).where(CacheEpoch.id <= newest - EPOCHS_KEPT)
    )
    return newest


def _watch(epochs_ref: "weakref.ref[Epochs]", pid: int) -> None:
    """Refresh the epoch every poll period while its app lives in this process."""
    while True:
        epochs = epochs_ref()
        if epochs is None or epochs.watching_in != pid:
            return
        interval = epochs.poll_seconds
        epochs.refresh()
        del epochs
        time.sleep(interval)
