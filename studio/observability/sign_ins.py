"""Failed sign-ins as this worker saw them, from the product's signal (studio.signals).

Counted in /metrics, and kept per second over the alert window so that a burst (someone
guessing passwords, or stuffing credentials from a leak) raises the `failed_sign_ins` alert.
"""

import threading
import time
from collections import deque
from typing import Any

from flask import current_app

from .. import signals
from . import metrics


class FailedSignIns:
    """Failed sign-ins of one app in this process: [second, count] for each second with some."""

    def __init__(self, window_seconds: int) -> None:
        self.window_seconds = window_seconds
        self.lock = threading.Lock()
        self.seconds: deque[list[int]] = deque()

    def note(self) -> None:
        now = int(time.monotonic())
        with self.lock:
            if self.seconds and self.seconds[-1][0] == now:
                self.seconds[-1][1] += 1
            else:
                self.seconds.append([now, 1])
            self._forget_before(now - self.window_seconds)

    def within_window(self) -> int:
        """Return how many sign-ins failed within the alert window."""
        with self.lock:
            self._forget_before(int(time.monotonic()) - self.window_seconds)
            return sum(count for _, count in self.seconds)

    def _forget_before(self, second: int) -> None:
        while self.seconds and self.seconds[0][0] < second:
            self.seconds.popleft()


def on_sign_in_failed(sender: Any, throttled: bool = False, **_: Any) -> None:
    metrics.SIGN_INS_FAILED.labels("throttled" if throttled else "credentials").inc()
    # The app's Observatory (EXTENSION_KEY of this package), absent without OBSERVABILITY.
    observed = current_app.extensions.get("studio.observability")
    if observed is not None:
        observed.failed_sign_ins.note()


def count_failed_sign_ins() -> None:
    """Listen to the product's sign-in signal (once per process; connecting twice is a no-op)."""
    signals.sign_in_failed.connect(on_sign_in_failed)
