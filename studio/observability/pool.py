"""The connection pool, measured from SQLAlchemy's pool events and its public counts.

No event comes before a checkout, so the wait for a connection cannot be timed from
outside the pool; what is measured is what events and `checkedout()` tell: checkouts, the
busiest moment, and pool timeouts (from the product's database-unavailable signal).
"""

import threading
import time
from collections import deque
from typing import Any

from flask import current_app
from sqlalchemy import Engine, event
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .. import signals
from . import metrics

# The error the product's database_unavailable signal names when no connection came in time.
POOL_TIMEOUT = PoolTimeout.__name__


class PoolStats:
    """What one engine's pool went through; listened on the engine, it survives recreation."""

    def __init__(self, max_overflow: int) -> None:
        self.max_overflow = max(max_overflow, 0)
        self.lock = threading.Lock()
        self.checkouts = 0
        self.timeouts: deque[float] = deque()  # monotonic times of pool timeouts
        self.timeouts_total = 0
        self.peak = 0  # most connections checked out at once since the process started
        self.interval_peak = 0  # the same since the last sample

    def checked_out(self, now_out: int) -> None:
        with self.lock:
            self.checkouts += 1
            self.peak = max(self.peak, now_out)
            self.interval_peak = max(self.interval_peak, now_out)
        with metrics.PENDING_LOCK:
            metrics.POOL_CHECKOUTS_PENDING.inc(1)

    def timed_out(self) -> None:
        with self.lock:
            self.timeouts.append(time.monotonic())
            self.timeouts_total += 1
        metrics.POOL_TIMEOUTS.inc()

    def timeouts_within(self, seconds: float) -> int:
        """Return how many checkouts timed out in the last `seconds`."""
        cutoff = time.monotonic() - seconds
        with self.lock:
            while self.timeouts and self.timeouts[0] < cutoff:
                self.timeouts.popleft()
            return len(self.timeouts)

    def take_interval_peak(self, now_out: int) -> int:
        """Return the most connections out at once since the last call, and start again."""
        with self.lock:
            peak, self.interval_peak = max(self.interval_peak, now_out), now_out
            return peak


def max_overflow_of(options: dict[str, Any]) -> int:
    """Return the max_overflow the engine was given (QueuePool's default 10 otherwise)."""
    return int(options.get("max_overflow", 10))


def measure_pool(engine: Engine, stats: PoolStats) -> None:
    """Count the engine's checkouts and its busiest moment; count pool timeouts."""

    # On the engine, not its pool: a pool recreated after dispose() keeps the listener.
    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        stats.checked_out(engine.pool.checkedout())

    signals.database_unavailable.connect(on_unavailable)


def on_unavailable(sender: Any, error: str = "", **_: Any) -> None:
    if error != POOL_TIMEOUT:
        return
    # The app's Observatory (EXTENSION_KEY of this package).
    observed = current_app.extensions.get("studio.observability")
    if observed is not None:
        observed.sampler.pool_stats.timed_out()
