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
from redis.exceptions import RedisError

from .observability.timing import add_time

logger = logging.getLogger(__name__)

COUNTERS = ("hits", "misses", "errors")


class CircuitBreaker:
    """Open for `open_seconds` after a failure; closed again after the first success."""

    def __init__(self, open_seconds: float) -> None:
        self.open_seconds = open_seconds
        self.open_until = 0.0
        self.failing = False
        self.lock = threading.Lock()

    def allows(self) -> bool:
        return time.monotonic() >= self.open_until

    def failed(self, exc: Exception) -> None:
        with self.lock:
            self.open_until = time.monotonic() + self.open_seconds
            if not self.failing:
                self.failing = True
                logger.warning(
                    "Redis cache unreachable (%s); serving from the database, retrying in %.0f s",
                    exc,
                    self.open_seconds,
                )

    def succeeded(self) -> None:
        if self.failing:
            with self.lock:
                if self.failing:
                    self.failing = False
                    logger.warning("Redis cache reachable again; caching resumed")

    @property
    def state(self) -> str:
        return "degraded" if self.failing else "ok"


class ResilientRedisCache(RedisCache):
    """Flask-Caching's RedisCache, with every call guarded by a circuit breaker."""

    circuit: CircuitBreaker

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list, kwargs: dict
    ) -> "ResilientRedisCache":
        backend = super().factory(app, config, args, kwargs)
        backend.circuit = CircuitBreaker(config.get("CACHE_CIRCUIT_OPEN_SECONDS", 5))
        return backend

    @property
    def client(self) -> Any:
        return self._write_client

    def guarded(self, default: Any, operation: Callable[..., Any], *args: Any) -> Any:
        """Run a Redis operation; on failure count it, open the circuit and return `default`."""
        if not self.circuit.allows():
            counters.add("errors")
            return default
        started = time.perf_counter()
        try:
            result = operation(*args)
        except RedisError as exc:
            counters.add("errors")
            self.circuit.failed(exc)
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
        return self.guarded(False, super().add, key, value, timeout)

    def set_many(self, mapping: dict[str, Any], timeout: int | None = None) -> Any:
        return self.guarded([], super().set_many, mapping, timeout)

    def delete(self, key: str) -> bool:
        return self.guarded(False, super().delete, key)

    def delete_many(self, *keys: str) -> Any:
        return self.guarded([], super().delete_many, *keys)

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
                    pipe.hincrby(backend._get_prefix() + self.REDIS_KEY, name, amount)
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
            shared = backend.guarded(
                None, backend.client.hgetall, backend._get_prefix() + self.REDIS_KEY
            )
            if shared is not None:
                return {name: int(shared.get(name.encode(), 0)) for name in COUNTERS}
        with self.lock:
            return dict(self.local)

    def reset(self) -> None:
        with self.lock:
            self.local = dict.fromkeys(COUNTERS, 0)
            self.unflushed = dict.fromkeys(COUNTERS, 0)


counters = Counters()
