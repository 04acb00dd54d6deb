"""A circuit breaker: after repeated failures, stop trying for a moment and fail at once."""

import logging
import os
import threading
import time
import weakref

from .. import signals

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_BREAKERS: "weakref.WeakSet[CircuitBreaker]" = weakref.WeakSet()


class CircuitBreaker:
    """Closed while things work; open for `open_seconds` after `failures` failures in a row.

    Once the open period is over, one caller at a time may probe (half-open): its success
    closes the breaker, its failure opens it again. A probe still unanswered after
    `probe_seconds` (a connection attempt to a frozen server) lets another through.
    """

    def __init__(
        self,
        name: str,
        failures: int,
        open_seconds: float,
        meanwhile: str = "failing fast",
        probe_seconds: float | None = None,
    ) -> None:
        self.name = name
        self.meanwhile = meanwhile
        self.failures = max(failures, 1)
        self.open_seconds = open_seconds
        self.probe_seconds = max(probe_seconds or 0.0, open_seconds)
        self._reset()
        _BREAKERS.add(self)

    def _reset(self) -> None:
        # In a forked child: a parent's thread may have held the lock at the fork.
        self.lock = threading.Lock()
        self.state = CLOSED
        self.failed_in_a_row = 0
        self.open_until = 0.0
        self.probe_since = 0.0
        self.outage_since = 0.0  # when it last opened from closed

    def allows(self) -> bool:
        """Return True if a call may go ahead now (and, half-open, take the probe)."""
        if self.state == CLOSED:
            return True
        now = time.monotonic()
        with self.lock:
            if self.state == OPEN and now >= self.open_until:
                self.state, self.probe_since = HALF_OPEN, now
                moved = True
            elif self.state == HALF_OPEN and now - self.probe_since >= self.probe_seconds:
                self.probe_since = now  # the last probe is still out: let another go
                return True
            else:
                return self.state == CLOSED
        if moved:
            signals.breaker_changed.send(self, state=HALF_OPEN)
        return True

    def seconds_until_probe(self) -> float:
        """Return how long until a call may try again (0 when it may now)."""
        if self.state == CLOSED:
            return 0.0
        if self.state == OPEN:
            return max(self.open_until - time.monotonic(), 0.0)
        return max(self.probe_since + self.probe_seconds - time.monotonic(), 0.0)

    def outage_seconds(self) -> float:
        """Return how long it has been failing (0 while closed)."""
        return 0.0 if self.state == CLOSED else time.monotonic() - self.outage_since

    def succeeded(self) -> None:
        if self.state == CLOSED and not self.failed_in_a_row:
            return
        with self.lock:
            self.failed_in_a_row = 0
            reopened = self.state != CLOSED
            self.state = CLOSED
        if reopened:
            logger.warning("%s reachable again", self.name)
            signals.breaker_changed.send(self, state=CLOSED)

    def trip(self, reason: str) -> None:
        """Open at once: one failure this telling (a server that stopped answering) is enough."""
        with self.lock:
            self.failed_in_a_row = max(self.failed_in_a_row, self.failures - 1)
        self.failed(reason)

    def failed(self, reason: str) -> None:
        with self.lock:
            self.failed_in_a_row += 1
            was = self.state
            if was == OPEN or (was == CLOSED and self.failed_in_a_row < self.failures):
                return
            now = time.monotonic()
            if was == CLOSED:
                self.outage_since = now
            self.state, self.open_until = OPEN, now + self.open_seconds
        if was == CLOSED:
            logger.warning(
                "%s unreachable (%s, %d failure(s) in a row); %s, trying again in %.1f s",
                self.name,
                reason,
                self.failures,
                self.meanwhile,
                self.open_seconds,
            )
        signals.breaker_changed.send(self, state=OPEN, reopened=was == HALF_OPEN)


def _reset_all_in_child() -> None:
    """A forked worker starts with its breakers closed and their locks free."""
    for breaker in list(_BREAKERS):
        breaker._reset()


os.register_at_fork(after_in_child=_reset_all_in_child)
