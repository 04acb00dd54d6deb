"""What studio caches, under which keys, and how every write retires it.

One paint is cached under its id. Listings, searches, filter choices and figures are
cached under a generation number that every write increments, so one INCR retires all
of them at once, on every worker sharing Redis. Every key also carries the cache's
epoch (studio.services.cache_epochs), which moves on when Redis misses an invalidation.

A changed entry is replaced by a tombstone for TOMBSTONE_SECONDS rather than deleted,
and readers only ever add an entry where none is: a reader that loaded a paint just
before a write cannot put the old copy back after the write retired it.
"""

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from .. import signals
from ..caching import ResilientRedisCache, counters
from ..extensions import cache, db
from ..logs import burst_log
from .cache_epochs import Epochs, add_epoch

logger = logging.getLogger(__name__)
T = TypeVar("T")
GENERATION_KEY = "generation"
TOMBSTONE = "studio:retired"
TOMBSTONE_SECONDS = 3
EPOCHS_KEY = "studio.cache_epochs"


@dataclass(frozen=True)
class Retirement:
    """What a write changed: cache keys to retire, and whether listings and figures changed."""

    keys: tuple[str, ...] = ()
    listings: bool = False


def register_cache_epochs(app: Flask) -> None:
    """Give the app its cache epoch (after the cache and the database are bound)."""
    with app.app_context():
        engine = db.engine
        shared = isinstance(cache.cache, ResilientRedisCache)
    app.extensions[EPOCHS_KEY] = Epochs(engine, app.config["CACHE_EPOCH_POLL_SECONDS"], shared)


def epochs() -> Epochs:
    return current_app.extensions[EPOCHS_KEY]


def backend() -> Any:
    return cache.cache


def stored_key(key: str) -> str | None:
    """Return the key as stored in the current epoch; None while the epoch is unknown."""
    epoch = epochs().current()
    return None if epoch is None else f"{epoch}:{key}"


def _is_tombstone(value: Any) -> bool:
    return isinstance(value, str) and value == TOMBSTONE


def prefetch(*keys: str) -> None:
    """Read keys this request is about to need in one round trip; `remember` uses them."""
    stored = [stored_key(key) for key in keys]
    if None in stored:
        return
    g.cache_prefetched = dict(zip(keys, backend().get_many(*stored), strict=True))


def remember(key: str, ttl_setting: str, loader: Callable[[], T]) -> T:
    """Return the cached value of `key`, or load, cache and return it."""
    prefetched = g.get("cache_prefetched")
    if prefetched and key in prefetched:
        value = prefetched.pop(key)
        stored = None
    else:
        stored = stored_key(key)
        if stored is None:
            counters.add("misses")
            return loader()
        value = backend().get(stored)
    if value is not None and not _is_tombstone(value):
        counters.add("hits")
        counters.flush(backend())
        return value
    counters.add("misses")
    loaded = loader()
    if loaded is not None and not _is_tombstone(value):
        # add, not set: a writer's tombstone that arrived meanwhile must win.
        backend().add(stored or stored_key(key), loaded, timeout=current_app.config[ttl_setting])
    counters.flush(backend())
    return loaded


def generation() -> int | None:
    """Return the current generation of listings and figures; None when the cache is away."""
    key = stored_key(GENERATION_KEY)
    if key is None:
        return None
    current = backend().get(key)
    if current is None:
        # Starting from the clock, a lost counter can never come back to an old number.
        backend().add(key, time.time_ns(), timeout=0)
        current = backend().get(key)
    return current


def remember_in_generation(name: str, parts: Any, ttl_setting: str, loader: Callable[[], T]) -> T:
    """Cache a listing or figure until the next write (or its TTL)."""
    current = generation()
    if current is None:
        counters.add("misses")
        return loader()
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()
    return remember(f"{name}:{current}:{digest}", ttl_setting, loader)


def paints_changed(*paint_ids: int) -> Retirement:
    """Return what a write of these paints retires: each paint, and every listing and figure."""
    return Retirement(tuple(paint_key(paint_id) for paint_id in paint_ids), listings=True)


def forget(*keys: str) -> Retirement:
    """Return the retirement of these keys alone (a revoked token, a deactivated user)."""
    return Retirement(tuple(keys))


def invalidation_at_risk() -> bool:
    """Return True when the cache is shared and cannot be reached right now."""
    store = backend()
    return isinstance(store, ResilientRedisCache) and store.circuit.state != "closed"


def start_new_epoch_in(session: Session, reason: str) -> int:
    """Add a new epoch in the session's transaction; return it (adopted after the commit)."""
    return add_epoch(session, reason)


def retire_after_commit(retirements: Iterable[Retirement], new_epoch: int | None = None) -> None:
    """Tell the cache what a committed write changed. Never raises: the write is saved.

    If the cache cannot be told, the miss is logged and counted and the whole cache moves
    to a new epoch, unless the transaction itself started one (`new_epoch`).
    """
    if new_epoch is not None:
        epochs().adopt(new_epoch)
    retirements = list(retirements)
    if not retirements:
        return
    keys = tuple(key for retirement in retirements for key in retirement.keys)
    listings = any(retirement.listings for retirement in retirements)
    try:
        told = _retire(keys, listings)
    except Exception as exc:  # whatever a cache backend raises, the write stands
        burst_log.note(logger, f"retire:{type(exc).__name__}", "cache retire failed", exc_info=exc)
        told = False
    if told:
        return
    signals.cache_invalidation_missed.send(backend(), keys=keys, listings=listings)
    burst_log.note(
        logger, "invalidation-missed", "the cache missed the retirement of %d key(s)", len(keys)
    )
    if new_epoch is None:
        epochs().start_new(f"the cache missed a write of {', '.join(keys)[:150] or 'listings'}")


def _retire(keys: tuple[str, ...], listings: bool) -> bool:
    epoch = epochs().current()
    if epoch is None:
        return False
    store = backend()
    told = True
    if keys:
        tombstones = {f"{epoch}:{key}": TOMBSTONE for key in keys}
        told = len(store.set_many(tombstones, timeout=TOMBSTONE_SECONDS)) == len(keys)
    if listings:
        told = store.inc(f"{epoch}:{GENERATION_KEY}") is not None and told
    return told


def paint_key(paint_id: int) -> str:
    return f"paint:{paint_id}"


def token_key(token_hash: str) -> str:
    return f"token:{token_hash}"


def user_key(user_id: int) -> str:
    return f"user:{user_id}"


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
        "state": ("ok" if current.circuit.state == "closed" else "degraded") if redis else "ok",
        **totals,
        "hit_rate": round(totals["hits"] / lookups, 4) if lookups else None,
    }
