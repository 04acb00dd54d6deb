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
    closes the breaker, its failure opens it again. A probe that never reports back (its
    process was killed, say) lets another through after `open_seconds`.
    """

    def __init__(
        self, name: str, failures: int, open_seconds: float, meanwhile: str = "failing fast"
    ) -> None:
        self.name = name
        self.meanwhile = meanwhile
        self.failures = max(failures, 1)
        self.open_seconds = open_seconds
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
                self._move(HALF_OPEN, "probing")
                self.probe_since = now
                return True
            if self.state == HALF_OPEN and now - self.probe_since >= self.open_seconds:
                self.probe_since = now  # the last probe never reported: let another go
                return True
            return self.state == CLOSED

    def seconds_until_probe(self) -> float:
        """Return how long until a call may try again (0 when it may now)."""
        if self.state == CLOSED:
            return 0.0
        if self.state == OPEN:
            return max(self.open_until - time.monotonic(), 0.0)
        return max(self.probe_since + self.open_seconds - time.monotonic(), 0.0)

    def outage_seconds(self) -> float:
        """Return how long it has been failing (0 while closed)."""
        return 0.0 if self.state == CLOSED else time.monotonic() - self.outage_since

    def succeeded(self) -> None:
        if self.state == CLOSED and not self.failed_in_a_row:
            return
        with self.lock:
            self.failed_in_a_row = 0
            if self.state != CLOSED:
                self._move(CLOSED, "closed again")

    def failed(self, reason: str) -> None:
        with self.lock:
            self.failed_in_a_row += 1
            if self.state == HALF_OPEN or (
                self.state == CLOSED and self.failed_in_a_row >= self.failures
            ):
                now = time.monotonic()
                if self.state == CLOSED:
                    self.outage_since = now
                self.open_until = now + self.open_seconds
                self._move(OPEN, reason)

    def _move(self, state: str, reason: str) -> None:
        previous, self.state = self.state, state
        if state == OPEN and previous == HALF_OPEN:
            return  # still failing: logged when it first opened
        if state == OPEN:
            logger.warning(
                "%s unreachable (%s, %d failure(s) in a row); %s, trying again in %.1f s",
                self.name,
                reason,
                self.failed_in_a_row,
                self.meanwhile,
                self.open_seconds,
            )
        elif state == CLOSED:
            logger.warning("%s reachable again", self.name)
        signals.breaker_changed.send(self, state=state)


def _reset_all_in_child() -> None:
    """A forked worker starts with its breakers closed and their locks free."""
    for breaker in list(_BREAKERS):
        breaker._reset()


os.register_at_fork(after_in_child=_reset_all_in_child)
