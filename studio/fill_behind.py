"""Readers' cache fills, sent to Redis by a thread of each process, many per round trip.

A read that missed the cache loads the value from the database and answers with it;
storing the value for the next reader is no part of that answer. So the request hands
it to its process's filler thread, which sends whatever has queued up as one pipeline of
`SET NX EX`, and the request's worker is free for the next request a round trip sooner.

What keeps a cache correct is unchanged (studio.services.cached_reads): a fill only adds
a value where no entry is, so the tombstone a writer leaves before its commit wins. The
one new risk is a fill arriving late, after a tombstone that retired it has expired; a
fill that waited longer than `max_delay` is therefore dropped, and `max_delay` must stay
far below a tombstone's life (CACHE_TOMBSTONE_SECONDS, 20 s by default).
"""

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from .forks import reset_in_children

logger = logging.getLogger(__name__)
# Fill = (queued at, stored key, value, seconds to live)
Fill = tuple[float, str, Any, int]


class FillBehind:
    """This process's queue of cache fills and the thread that sends them."""

    def __init__(
        self,
        send: Callable[[list[tuple[str, Any, int]]], Any],
        max_delay: float,
        max_batch: int = 200,
        max_queued: int = 10_000,
    ) -> None:
        # send: stores [(key, value, ttl)] if absent, in one round trip; never raises.
        self.send = send
        self.max_delay = max_delay
        self.max_batch = max_batch
        self.max_queued = max_queued
        self._reset()
        reset_in_children(self._reset)

    def _reset(self) -> None:
        # Also in a forked child: its parent's thread is not its own.
        self.fills: queue.SimpleQueue[Fill] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.pending = 0  # queued or being sent
        self.dropped = 0
        self.started = False

    def add(self, key: str, value: Any, ttl: int) -> None:
        """Queue a fill; when too many are waiting already, skip it (a later read fills)."""
        with self.lock:
            if self.pending >= self.max_queued:
                self.dropped += 1
                return
            self.pending += 1
            if not self.started:
                self.started = True
                self._start()
        self.fills.put((time.monotonic(), key, value, ttl))

    def settled(self, timeout: float = 2.0) -> bool:
        """Wait until every fill queued so far was sent (or dropped); False on timeout."""
        ends = time.monotonic() + timeout
        while self.pending and time.monotonic() < ends:
            time.sleep(0.001)
        return not self.pending

    def send_waiting(self, timeout: float | None = None) -> int:
        """Wait up to `timeout` s for a fill, then send every one queued; return how many went."""
        try:
            batch = [self.fills.get(timeout=timeout)]
        except queue.Empty:
            return 0
        while len(batch) < self.max_batch:
            try:
                batch.append(self.fills.get_nowait())
            except queue.Empty:
                break
        oldest = time.monotonic() - self.max_delay
        fresh = [(key, value, ttl) for queued, key, value, ttl in batch if queued >= oldest]
        try:
            if fresh:
                self.send(fresh)
        finally:
            with self.lock:
                self.pending -= len(batch)
                self.dropped += len(batch) - len(fresh)
        return len(fresh)

    def _start(self) -> None:
        thread = threading.Thread(target=_send_forever, args=(weakref.ref(self),), daemon=True)
        thread.name = "studio-cache-fills"
        thread.start()


def _send_forever(filler_ref: "weakref.ref[FillBehind]") -> None:
    while True:
        filler = filler_ref()
        if filler is None:
            return
        try:
            # Wakes at least once a second, so a dropped app lets its thread end.
            filler.send_waiting(timeout=1.0)
        except Exception:  # the thread must outlive any one failure
            logger.exception("sending cache fills failed")
        del filler
