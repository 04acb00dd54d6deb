"""A connection pool that measures itself: checkout waits, timeouts and its busiest moment."""

import threading
import time
from collections import deque
from typing import Any

from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool

from . import metrics

WAITS_KEPT = 1000  # latest checkout times kept for percentiles


class PoolStats:
    """What one engine's pool went through; survives the pool being recreated."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waits: deque[float] = deque(maxlen=WAITS_KEPT)
        self.timeouts: deque[float] = deque()  # monotonic times of pool timeouts
        self.timeouts_total = 0
        self.peak = 0  # most connections checked out at once since the process started
        self.interval_peak = 0  # the same since the last sample

    def checked_out(self, seconds: float, now_out: int) -> None:
        with self.lock:
            self.waits.append(seconds)
            self.peak = max(self.peak, now_out)
            self.interval_peak = max(self.interval_peak, now_out)
        with metrics.PENDING_LOCK:
            metrics.POOL_CHECKOUT_PENDING.observe(seconds)

    def timed_out(self, seconds: float) -> None:
        with self.lock:
            self.waits.append(seconds)
            self.timeouts.append(time.monotonic())
            self.timeouts_total += 1
        with metrics.PENDING_LOCK:
            metrics.POOL_CHECKOUT_PENDING.observe(seconds)
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

    def recent_waits(self) -> list[float]:
        with self.lock:
            return list(self.waits)


class MeasuredPool(QueuePool):
    """SQLAlchemy's QueuePool, timing each checkout (the wait for a connection) for metrics."""

    def __init__(self, *args: Any, stats: PoolStats | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stats = stats or PoolStats()

    def connect(self) -> Any:
        started = time.perf_counter()
        try:
            connection = super().connect()
        except PoolTimeout:
            self.stats.timed_out(time.perf_counter() - started)
            raise
        self.stats.checked_out(time.perf_counter() - started, self.checkedout())
        return connection

    def recreate(self) -> "MeasuredPool":
        # After dispose() or a disconnect the engine swaps in a new pool; keep the history.
        pool = super().recreate()
        pool.stats = self.stats
        return pool

    @property
    def capacity(self) -> int:
        """Return the most connections this pool may hold: pool_size + max_overflow."""
        return self.size() + max(self._max_overflow, 0)
