"""Database faults as this worker saw them: retries, 503s, the breaker, missed invalidations.

Counted from the signals the product sends (studio.signals); the product knows nothing
of this module.
"""

import threading
from collections import Counter
from typing import Any

from .. import signals
from ..resilience.breaker import CLOSED, HALF_OPEN, OPEN
from . import metrics

BREAKER_LEVELS = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class FaultCounts:
    """What went wrong with the database in this process, by kind and error class."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.retries: Counter[str] = Counter()
        self.unavailable: Counter[str] = Counter()
        self.breaker_opened = 0
        self.invalidations_missed = 0
        self.replays = 0

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "retries": dict(self.retries),
                "unavailable": dict(self.unavailable),
                "breaker_opened": self.breaker_opened,
                "invalidations_missed": self.invalidations_missed,
                "replays": self.replays,
            }


fault_counts = FaultCounts()


def on_retry(sender: Any, error: str = "", **_: Any) -> None:
    with fault_counts.lock:
        fault_counts.retries[error] += 1
    metrics.DB_RETRIES.labels(error).inc()


def on_unavailable(sender: Any, error: str = "", **_: Any) -> None:
    with fault_counts.lock:
        fault_counts.unavailable[error] += 1
    metrics.DB_UNAVAILABLE.labels(error).inc()


def on_breaker(breaker: Any, state: str = CLOSED, reopened: bool = False, **_: Any) -> None:
    if getattr(breaker, "name", "") != "database":
        return
    metrics.DB_BREAKER_STATE.set(BREAKER_LEVELS.get(state, 0))
    if state == OPEN and not reopened:
        with fault_counts.lock:
            fault_counts.breaker_opened += 1
        metrics.DB_BREAKER_OPENED.inc()


def on_missed_invalidation(sender: Any, **_: Any) -> None:
    with fault_counts.lock:
        fault_counts.invalidations_missed += 1
    metrics.CACHE_INVALIDATIONS_MISSED.inc()


def on_replay(sender: Any, **_: Any) -> None:
    with fault_counts.lock:
        fault_counts.replays += 1
    metrics.IDEMPOTENT_REPLAYS.inc()


def count_faults() -> None:
    """Listen to the product's fault signals (once per process; connecting twice is a no-op)."""
    signals.database_retry.connect(on_retry)
    signals.database_unavailable.connect(on_unavailable)
    signals.breaker_changed.connect(on_breaker)
    signals.cache_invalidation_missed.connect(on_missed_invalidation)
    signals.idempotent_replay.connect(on_replay)
