"""What studio caches, under which keys, and how every write retires it.

One paint is cached under its id and deleted when it changes. Listings, searches,
filter choices and figures are cached under a generation number that every write
increments, so one INCR retires all of them at once, on every worker sharing Redis.
"""

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g

from ..caching import ResilientRedisCache, counters
from ..extensions import cache

T = TypeVar("T")
GENERATION_KEY = "generation"


def backend() -> Any:
    return cache.cache


def prefetch(*keys: str) -> None:
    """Read keys this request is about to need in one round trip; `remember` uses them."""
    pending.replay()
    g.cache_prefetched = dict(zip(keys, backend().get_many(*keys), strict=True))


def remember(key: str, ttl_setting: str, loader: Callable[[], T]) -> T:
    """Return the cached value of `key`, or load, cache and return it."""
    prefetched = g.get("cache_prefetched")
    if prefetched and key in prefetched:
        value = prefetched.pop(key)
    else:
        pending.replay()
        value = backend().get(key)
    if value is not None:
        counters.add("hits")
        counters.flush(backend())
        return value
    counters.add("misses")
    value = loader()
    if value is not None:
        backend().set(key, value, timeout=current_app.config[ttl_setting])
    counters.flush(backend())
    return value


def generation() -> int | None:
    """Return the current generation of listings and figures; None when the cache is away."""
    pending.replay()
    current = backend().get(GENERATION_KEY)
    if current is None:
        # Starting from the clock, a lost counter can never come back to an old number.
        backend().add(GENERATION_KEY, time.time_ns(), timeout=0)
        current = backend().get(GENERATION_KEY)
    return current


def remember_in_generation(name: str, parts: Any, ttl_setting: str, loader: Callable[[], T]) -> T:
    """Cache a listing or figure until the next write (or its TTL)."""
    current = generation()
    if current is None:
        counters.add("misses")
        return loader()
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()
    return remember(f"{name}:{current}:{digest}", ttl_setting, loader)


class PendingInvalidations:
    """Writes whose invalidation Redis missed; replayed before this worker reads again."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.paint_ids: set[int] = set()
        self.waiting = False

    def note(self, paint_ids: tuple[int, ...]) -> None:
        with self.lock:
            self.paint_ids.update(paint_ids)
            self.waiting = True

    def replay(self) -> None:
        if not self.waiting:
            return
        with self.lock:
            paint_ids, self.paint_ids, self.waiting = self.paint_ids, set(), False
        retire(tuple(paint_ids))


pending = PendingInvalidations()


def retire(paint_ids: tuple[int, ...]) -> None:
    if paint_ids:
        backend().delete_many(*(paint_key(paint_id) for paint_id in paint_ids))
    backend().inc(GENERATION_KEY)
    current = backend()
    if isinstance(current, ResilientRedisCache) and current.circuit.failing:
        pending.note(paint_ids)


def paints_changed(*paint_ids: int) -> None:
    """Retire the changed paints and every listing and figure."""
    pending.replay()
    retire(paint_ids)


def paint_key(paint_id: int) -> str:
    return f"paint:{paint_id}"


def token_key(token_hash: str) -> str:
    return f"token:{token_hash}"


def user_key(user_id: int) -> str:
    return f"user:{user_id}"


def forget(*keys: str) -> None:
    """Delete cache entries (a revoked token, a deactivated user)."""
    if keys:
        backend().delete_many(*keys)


def probe() -> str:
    """Touch the cache once (so an outage shows at once) and return its state."""
    backend().has(GENERATION_KEY)
    return status()["state"]


def status() -> dict[str, Any]:
    """Return the cache's backend, state and counters (all workers' where Redis keeps them)."""
    current = backend()
    totals = counters.totals(current)
    lookups = totals["hits"] + totals["misses"]
    redis = isinstance(current, ResilientRedisCache)
    return {
        "backend": type(current).__name__,
        "shared": redis,
        "state": current.circuit.state if redis else "ok",
        **totals,
        "hit_rate": round(totals["hits"] / lookups, 4) if lookups else None,
    }
