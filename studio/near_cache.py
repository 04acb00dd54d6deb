"""A small cache in each worker in front of Redis, kept correct by Redis's invalidations.

A warm read served from here makes no round trip at all. Each process holds one Redis
connection (RESP2) that turns on CLIENT TRACKING in broadcast mode for the cache's key
prefix, redirected to itself, and subscribes to `__redis__:invalidate`: Redis then tells
it of every change to any cache key, by any client. Why what it serves is never older
than what Redis would have answered:

- Before serving, the request drains the invalidations already in the connection's
  socket. A writer tombstones what it changes before its commit, and Redis writes the
  invalidation out in the same pass as its answer to that write (Redis 7.0's beforeSleep
  queues broadcast invalidations, then writes every pending reply), so a write that
  committed before this read began has retired the entry here already.
- A value read from Redis is kept only if no invalidation arrived during the read (a
  sequence number, checked after draining once more); one that arrives later evicts it.
- The connection is pinged every quarter of `silence` seconds, and the tier is served
  only while a ping sent less than `silence` ago (the Redis call timeout) was answered,
  with every invalidation before it. A writer that could not reach Redis waited at least
  that long before it gave up and started a new cache epoch, so a Redis that stopped
  answering (frozen, cut off) empties the tier before such a write can commit.
- Any trouble with the connection, or the Redis breaker leaving closed, empties the tier
  and bypasses it until tracking is set up again (by a thread of each process, started
  on first use, so after gunicorn forks). An epoch change empties it too.

Entries live at most `max_age` seconds, and at most `max_entries` of them (least
recently used go first). Every request gets the same object: the caller keeps only values
no one changes (frozen records, numbers).
"""

import logging
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

from redis import Redis

from .forks import reset_in_children
from .logs import burst_log

logger = logging.getLogger(__name__)
INVALIDATIONS = "__redis__:invalidate"
MISSING = object()
RETRY_SECONDS = 1.0


class NearCache:
    """This process's copies of values read from Redis, retired by Redis's invalidations."""

    def __init__(
        self,
        client: Callable[[], Redis],
        prefix: str,
        max_entries: int,
        max_age: float,
        silence: float,
        healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        # client: makes a RESP2 client for the cache's Redis (nothing connects until used).
        self.client = client
        self.prefix = prefix
        self.max_entries = max_entries
        self.max_age = max_age
        self.silence = silence
        self.healthy = healthy
        self._reset()
        reset_in_children(self._reset)

    def _reset(self) -> None:
        # Also in a forked child: its parent's socket and thread are not its own.
        self.lock = threading.RLock()
        self.entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self.sequence = 0
        self.epoch: int | None = None
        self.connection: Any = None
        self.client_id: int | None = None  # Redis's id of the tracking connection
        self.pings: deque[float] = deque()
        self.answered_ping = 0.0  # when the last answered ping was sent
        self.ping_sent = 0.0
        self.next_setup = 0.0
        self.watching = False

    # Reads

    def get_many(self, keys: list[str], epoch: int) -> list[Any] | None:
        """Return each key's value or MISSING; None when the tier cannot be trusted now."""
        if not self.watching:
            self._start_watching()
        with self.lock:
            if not self._trusted():
                return None
            if epoch != self.epoch:
                self._empty()
                self.epoch = epoch
            now = time.monotonic()
            return [self._lookup(key, now) for key in keys]

    def mark(self) -> int:
        """Return the point after which values read from Redis may be kept (see `keep`)."""
        return self.sequence

    def keep(self, mark: int, values: dict[str, Any]) -> None:
        """Keep values read from Redis since `mark`, unless an invalidation came meanwhile."""
        values = {key: value for key, value in values.items() if value is not None}
        if not values:
            return
        with self.lock:
            if not self._trusted() or self.sequence != mark:
                return
            expires = time.monotonic() + self.max_age
            for key, value in values.items():
                self.entries[key] = (expires, value)
                self.entries.move_to_end(key)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)

    def _lookup(self, key: str, now: float) -> Any:
        entry = self.entries.get(key)
        if entry is None:
            return MISSING
        if entry[0] <= now:
            del self.entries[key]
            return MISSING
        self.entries.move_to_end(key)
        return entry[1]

    def _trusted(self) -> bool:
        """Drain what Redis has sent; True if every invalidation until moments ago is in."""
        if self.connection is None:
            return False
        if not self.healthy():
            self._drop("the Redis breaker is not closed")
            return False
        try:
            self._drain()
        except Exception as exc:
            self._drop(f"{type(exc).__name__}: {exc}")
            return False
        if time.monotonic() - self.answered_ping >= self.silence:
            # Redis has not answered lately: what it may have changed meanwhile is unknown.
            self._empty()
            return False
        return True

    # The connection

    def _drain(self) -> None:
        connection = self.connection
        while connection.can_read(timeout=0):
            self._handle(connection.read_response())
        now = time.monotonic()
        if now - self.ping_sent >= self.silence / 4:
            connection.send_command("PING")
            self.pings.append(now)
            self.ping_sent = now

    def _handle(self, message: Any) -> None:
        kind = message[0]
        if kind == b"message":
            self.invalidate(message[2])
        elif kind == b"pong":
            self.answered_ping = self.pings.popleft()

    def invalidate(self, keys: Iterable[bytes] | None) -> None:
        """Forget these Redis keys (None: all of them, as after FLUSHDB)."""
        self.sequence += 1
        if keys is None:
            self.entries.clear()
            return
        skip = len(self.prefix)
        for key in keys:
            self.entries.pop(key.decode(errors="replace")[skip:], None)

    def _empty(self) -> None:
        self.entries.clear()
        self.sequence += 1

    def _drop(self, reason: str) -> None:
        burst_log.note(logger, "near-cache", "near cache off until Redis is tracked: %s", reason)
        self._empty()
        connection, self.connection = self.connection, None
        self.pings.clear()
        self.next_setup = time.monotonic() + RETRY_SECONDS
        if connection is not None:
            try:
                connection.disconnect()
            except Exception:  # it is being thrown away
                logger.debug("closing the tracking connection failed", exc_info=True)

    def set_up(self) -> None:
        """Connect, track every key under the prefix and subscribe to the invalidations."""
        connection = self.client().connection_pool.make_connection()
        try:
            connection.connect()
            connection.send_command("CLIENT", "ID")
            own_id = connection.read_response()
            self.client_id = own_id
            prefix = ("PREFIX", self.prefix) if self.prefix else ()
            tracking = ("CLIENT", "TRACKING", "on", "REDIRECT", own_id, "BCAST", *prefix)
            connection.send_command(*tracking)
            connection.read_response()
            connection.send_command("SUBSCRIBE", INVALIDATIONS)
            connection.read_response()
        except Exception:
            connection.disconnect()
            raise
        with self.lock:
            if self.connection is not None:
                connection.disconnect()
                return
            self._empty()
            self.connection = connection
            self.pings.clear()
            self.answered_ping = self.ping_sent = 0.0
        logger.info("near cache: tracking Redis keys under %r", self.prefix)

    def tick(self) -> None:
        """Keep the connection drained and pinged; set it up again after trouble."""
        if self.connection is None:
            if time.monotonic() < self.next_setup or not self.healthy():
                return
            try:
                self.set_up()
            except Exception as exc:
                with self.lock:
                    self._drop(f"cannot set up tracking: {type(exc).__name__}: {exc}")
            return
        with self.lock:
            self._trusted()

    def _start_watching(self) -> None:
        self.watching = True
        thread = threading.Thread(target=_watch, args=(weakref.ref(self),), daemon=True)
        thread.name = "studio-near-cache"
        thread.start()


def _watch(cache_ref: "weakref.ref[NearCache]") -> None:
    """Drain and ping the connection while its app lives (an idle worker's too)."""
    while True:
        cache = cache_ref()
        if cache is None or not cache.watching:
            return
        interval = cache.silence / 4
        try:
            cache.tick()
        except Exception:  # the thread must outlive any one failure
            logger.exception("near cache upkeep failed")
        del cache
        time.sleep(interval)
