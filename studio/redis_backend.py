"""A Redis cache backend that never fails a request, and studio's cache counters.

Flask-Caching's decorators swallow backend errors, but direct get/set/delete calls
raise (Flask-Caching issue #217). This backend guards every call: when Redis cannot
be reached it answers as a miss at once, logs the outage once, stops trying for a
short open-circuit period, and goes back to Redis by itself when it answers again.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_caching.backends.rediscache import RedisCache
from redis import from_url as redis_from_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout

from .clock import add_time
from .logs import burst_log
from .resilience.breaker import CircuitBreaker

logger = logging.getLogger(__name__)

COUNTERS = ("hits", "misses", "errors")
# Failures that mean Redis cannot be reached; anything else is one call's problem.
UNREACHABLE = (RedisConnectionError, RedisTimeout, OSError)
# Increment each counter in KEYS, starting a missing one from ARGV[1], and let each live
# ARGV[2] seconds from now; return how many were incremented. Redis runs a script whole,
# so no other client sees a counter between its start and its increment.
BUMP_SCRIPT = """
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'NX', 'EX', ARGV[2])
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[2])
end
return #KEYS
"""


class ResilientRedisCache(RedisCache):
    """Flask-Caching's RedisCache, with every call guarded by a circuit breaker."""

    circuit: CircuitBreaker
    bumps: Any  # redis-py's Script for BUMP_SCRIPT
    client: Any  # the redis-py client, made here so that studio holds it itself
    prefix: str

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list, kwargs: dict
    ) -> "ResilientRedisCache":
        client = redis_from_url(config["CACHE_REDIS_URL"], **(config.get("CACHE_OPTIONS") or {}))
        prefix = config.get("CACHE_KEY_PREFIX") or ""
        # A key another worker wrote again meanwhile is not a failure to delete.
        kwargs.update(key_prefix=prefix, ignore_delete_many_errors=True)
        backend = cls(client, *args, **kwargs)
        backend.client, backend.prefix = client, prefix
        # A write moves 16 to 24 generations on: one script call instead of a pipeline of
        # three commands each, which cost a worker about 1 ms of Python per write to send.
        backend.bumps = client.register_script(BUMP_SCRIPT)
        backend.circuit = CircuitBreaker(
            "Redis cache",
            failures=1,
            open_seconds=config.get("CACHE_CIRCUIT_OPEN_SECONDS", 5),
            meanwhile="serving from the database",
        )
        return backend

    def guarded(self, default: Any, operation: Callable[..., Any], *args: Any) -> Any:
        """Run a Redis operation; on failure count it and return `default`.

        Redis out of reach opens the circuit; any other error (cachelib's, pickle's) is a
        miss of that one call: a cache never fails a request.
        """
        if not self.circuit.allows():
            counters.add("errors")
            return default
        started = time.perf_counter()
        try:
            result = operation(*args)
        except UNREACHABLE as exc:
            counters.add("errors")
            self.circuit.failed(f"{type(exc).__name__}: {exc}")
            return default
        except Exception as exc:
            counters.add("errors")
            burst_log.note(logger, f"cache:{type(exc).__name__}", "cache call failed: %r", exc)
            return default
        finally:
            add_time("cache", time.perf_counter() - started)
        self.circuit.succeeded()
        return result

    def get(self, key: str) -> Any:
        return self.guarded(None, super().get, key)

    def get_many(self, *keys: str) -> list[Any]:
        return self.guarded([None] * len(keys), super().get_many, *keys)

    def set(self, key: str, value: Any, timeout: int | None = None) -> Any:
        return self.guarded(False, super().set, key, value, timeout)

    def add(self, key: str, value: Any, timeout: int | None = None) -> Any:
        # One SET NX EX: cachelib's SETNX then EXPIRE takes two round trips and can leave
        # a key without its TTL between them.
        return self.guarded(False, self._set_if_absent, key, value, timeout)

    def _set_if_absent(self, key: str, value: Any, timeout: int | None) -> bool:
        seconds = self.default_timeout if timeout is None else timeout
        dump = self.serializer.dumps(value)
        return bool(self.client.set(self.prefix + key, dump, nx=True, ex=seconds or None))

    def add_many(self, fills: list[tuple[str, Any, int | None]]) -> Any:
        """Store each (key, value, timeout) where the key is absent, all in one round trip."""
        return self.guarded(None, self._set_many_if_absent, fills)

    def _set_many_if_absent(self, fills: list[tuple[str, Any, int | None]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for key, value, timeout in fills:
            seconds = self.default_timeout if timeout is None else timeout
            pipe.set(self.prefix + key, self.serializer.dumps(value), nx=True, ex=seconds or None)
        return pipe.execute()

    def set_many(self, mapping: dict[str, Any], timeout: int | None = None) -> Any:
        return self.guarded([], super().set_many, mapping, timeout)

    def bump_many(self, keys: list[str], start: int, timeout: int) -> bool:
        """Increment each counter, all in one command; return False if Redis missed it.

        A missing counter starts from `start` (never from 0: a lost counter must not come
        back to a number it had), and each lives `timeout` seconds from now.
        """
        names = [self.prefix + key for key in keys]
        moved = self.guarded(None, self.bumps, names, [self.serializer.dumps(start), timeout])
        return moved == len(keys)

    def delete(self, key: str) -> bool:
        return self.guarded(False, super().delete, key)

    def delete_many(self, *keys: str) -> Any:
        # One UNLINK for all of them, instead of a DELETE and an EXISTS per key.
        return self.guarded(None, self.unlink, *keys)

    def has(self, key: str) -> bool:
        return self.guarded(False, super().has, key)

    def inc(self, key: str, delta: int = 1) -> Any:
        return self.guarded(None, super().inc, key, delta)

    def dec(self, key: str, delta: int = 1) -> Any:
        return self.guarded(None, super().dec, key, delta)


class Counters:
    """Hits, misses and errors of this process; pushed to Redis to add up all workers."""

    FLUSH_SECONDS = 1.0
    REDIS_KEY = "cache-counters"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.local = dict.fromkeys(COUNTERS, 0)
        self.unflushed = dict.fromkeys(COUNTERS, 0)
        self.flushed_at = time.monotonic()

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            self.local[name] += amount
            self.unflushed[name] += amount

    def flush(self, backend: Any, force: bool = False) -> None:
        """Add this process's new counts to the shared Redis hash, at most once a second."""
        if not isinstance(backend, ResilientRedisCache):
            return
        now = time.monotonic()
        if not force and now - self.flushed_at < self.FLUSH_SECONDS:
            return
        with self.lock:
            pending, self.unflushed = self.unflushed, dict.fromkeys(COUNTERS, 0)
            self.flushed_at = now
        if not any(pending.values()):
            return

        def push() -> bool:
            pipe = backend.client.pipeline(transaction=False)
            for name, amount in pending.items():
                if amount:
                    pipe.hincrby(backend.prefix + self.REDIS_KEY, name, amount)
            pipe.execute()
            return True

        if not backend.guarded(False, push):
            # Redis is away: keep the counts for the next flush.
            with self.lock:
                for name, amount in pending.items():
                    self.unflushed[name] += amount

    def totals(self, backend: Any) -> dict[str, int]:
        """Return the counts of every worker where Redis keeps them, else of this process."""
        if isinstance(backend, ResilientRedisCache):
            self.flush(backend, force=True)
            shared = backend.guarded(None, backend.client.hgetall, backend.prefix + self.REDIS_KEY)
            if shared is not None:
                return {name: int(shared.get(name.encode(), 0)) for name in COUNTERS}
        with self.lock:
            return dict(self.local)

    def reset(self) -> None:
        with self.lock:
            self.local = dict.fromkeys(COUNTERS, 0)
            self.unflushed = dict.fromkeys(COUNTERS, 0)


counters = Counters()
