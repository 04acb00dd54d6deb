"""What studio caches, under which keys, and what each write retires.

One paint is cached under its id. Listings, searches, filter choices and figures are
cached under generation numbers, so an INCR retires all that was cached under one, on
every worker sharing Redis. A cached read carries two: the whole cache's (GENERATION_KEY),
which a write of many paints at once moves on (an import, a rename in the lists), and
the one of its scope, which a write moves on only if it can change what the read shows
(studio.services.cache_scopes: a listing filtered by brand, family, type or stock state
is retired only by a write of a paint that had or has those values). What no filter
narrows (the unfiltered listing, searches, the figures) is in the scope of every paint
(EVERY_PAINT), which every write of a paint moves on.

Every key also carries the cache's epoch (studio.services.cache_epochs), which moves on
when Redis misses an invalidation.

A write retires what it changes before its commit: each changed entry is replaced by a
tombstone that outlives any request (CACHE_TOMBSTONE_SECONDS), and readers only ever add
an entry where none is, so no reader can put an old copy back, whether it loaded before
or after the commit. If Redis cannot be told, the write's own transaction starts a new
epoch. The write's generations are moved on again after the commit, since a listing
loaded in between would show the database as it was. A generation that is lost (evicted, expired
after GENERATION_SECONDS without a write) starts again from the clock, beyond any number it
had: what was cached under it is then simply never read again.
"""

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, g
from redis import from_url as redis_from_url

from .. import signals
from ..extensions import cache, db
from ..fill_behind import FillBehind
from ..logs import burst_log
from ..near_cache import MISSING, NearCache
from ..redis_backend import ResilientRedisCache, counters
from ..resilience.breaker import CLOSED
from .cache_epochs import Epochs

logger = logging.getLogger(__name__)
T = TypeVar("T")
GENERATION_KEY = "generation"
# The scope of what any write of a paint can change (see studio.services.cache_scopes).
EVERY_PAINT = f"{GENERATION_KEY}:paints"
# How long a generation lives without a write: far beyond any cached read's TTL.
GENERATION_SECONDS = 86_400
TOMBSTONE = "studio:retired"
EPOCHS_KEY = "studio.cache_epochs"
NEAR_KEY = "studio.near_cache"
FILLS_KEY = "studio.fill_behind"
# What the near cache may hold: frozen records (paint, token's and user's owner) and numbers
# (every generation, whose keys all start with GENERATION_KEY).
NEAR_KINDS = ("paint:", "token:", "user:", GENERATION_KEY)
# A queued fill older than this is dropped: far below a tombstone's life (studio.fill_behind).
FILL_MAX_DELAY = 1.0
# What a write of many paints moves on: the generation every cached read carries.
ALL_READS = frozenset({GENERATION_KEY})
TTL_SETTINGS = ("PAINT_CACHE_TTL", "LIST_CACHE_TTL", "STATS_CACHE_TTL", "AUTH_CACHE_TTL")


@dataclass(frozen=True)
class Retirement:
    """What a write changed: cache keys to retire, and generations to move on."""

    keys: tuple[str, ...] = ()
    generations: frozenset[str] = frozenset()


def register_cache_epochs(app: Flask) -> None:
    """Give the app its cache epoch and near cache (after the cache and the database are bound)."""
    with app.app_context():
        engine, store = db.engine, cache.cache
    redis = isinstance(store, ResilientRedisCache)
    server_id = redis_run_id(store) if redis else None
    app.extensions[EPOCHS_KEY] = Epochs(
        engine,
        app.config["CACHE_EPOCH_POLL_SECONDS"],
        server_id,
        lease_seconds=app.config["CACHE_EPOCH_LEASE_SECONDS"],
    )
    app.extensions[NEAR_KEY] = near_cache_for(app.config, store) if redis else None
    fills = redis and app.config["CACHE_FILL_BEHIND"]
    app.extensions[FILLS_KEY] = FillBehind(store.add_many, FILL_MAX_DELAY) if fills else None


def near_cache_for(config: Any, store: ResilientRedisCache) -> NearCache | None:
    """Return the near cache in front of this Redis cache, or None when it is turned off."""
    if not config["NEAR_CACHE"]:
        return None
    ttls = [config[name] for name in TTL_SETTINGS if config[name] > 0]
    options = config.get("CACHE_OPTIONS") or {}
    url = config["CACHE_REDIS_URL"]
    return NearCache(
        client=lambda: redis_from_url(url, **options, protocol=2),
        prefix=store.prefix,
        max_entries=config["NEAR_CACHE_ENTRIES"],
        # Never longer than Redis keeps the value.
        max_age=min([config["NEAR_CACHE_SECONDS"], *ttls]),
        silence=options.get("socket_timeout") or 0.25,
        healthy=lambda: store.circuit.state == CLOSED,
    )


def redis_run_id(store: ResilientRedisCache) -> Callable[[], str | None]:
    """Return a function telling which run of the Redis server answers (None when none does)."""
    return lambda: store.guarded(None, lambda: store.client.info("server").get("run_id"))


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
    g.cache_prefetched = dict(zip(keys, read_many(stored), strict=True))


def read_many(stored: list[str]) -> list[Any]:
    """Return the values of these stored keys: from this worker's near cache, else Redis."""
    near = current_app.extensions.get(NEAR_KEY)
    found = near.get_many(stored, epochs().current()) if near else None
    if found is None:
        return backend().get_many(*stored)
    missing = [key for key, value in zip(stored, found, strict=True) if value is MISSING]
    if not missing:
        return found
    mark = near.mark()
    read = dict(zip(missing, backend().get_many(*missing), strict=True))
    near.keep(mark, {key: value for key, value in read.items() if _near_keeps(key, value)})
    pairs = zip(stored, found, strict=True)
    return [read[key] if value is MISSING else value for key, value in pairs]


def _near_keeps(stored: str, value: Any) -> bool:
    # Every request gets the same object: only frozen records and numbers, never a tombstone.
    return not _is_tombstone(value) and stored.split(":", 1)[-1].startswith(NEAR_KINDS)


def remember(key: str, ttl_setting: str, loader: Callable[[], T], revocable: bool = False) -> T:
    """Return the cached value of `key`, or load, cache and return it.

    `revocable`: the value must change everywhere at once when it is revoked (who may sign
    in); a cache of one process's own while several serve could not learn of that in
    another, so then it is loaded every time instead.
    """
    if revocable and current_app.config["CACHE_STALE_RISK"]:
        return loader()
    prefetched = g.get("cache_prefetched")
    if prefetched and key in prefetched:
        value = prefetched.pop(key)
        stored = None
    else:
        stored = stored_key(key)
        if stored is None:
            counters.add("misses")
            return loader()
        value = read_many([stored])[0]
    if value is not None and not _is_tombstone(value):
        counters.add("hits")
        counters.flush(backend())
        return value
    counters.add("misses")
    loaded = loader()
    if loaded is not None and not _is_tombstone(value):
        fill(stored or stored_key(key), loaded, current_app.config[ttl_setting])
    counters.flush(backend())
    return loaded


def fill(stored: str | None, value: Any, ttl: int) -> None:
    """Store a value a reader loaded, for the next reader (from a thread, where there is one).

    An add, not a set: a writer's tombstone that arrived meanwhile must win.
    """
    if stored is None:
        return
    filler = current_app.extensions.get(FILLS_KEY)
    if filler is None:
        backend().add(stored, value, timeout=ttl)
    else:
        filler.add(stored, value, ttl)


def generations(keys: Sequence[str]) -> list[int] | None:
    """Return the current number of each generation; None when the cache is away.

    One round trip (none when the near cache holds them), and one more to start any missing.
    """
    stored = [stored_key(key) for key in keys]
    if None in stored:
        return None
    current = read_many(stored)
    missing = [key for key, value in zip(stored, current, strict=True) if value is None]
    if missing:
        for key in missing:
            # Starting from the clock, a lost counter can never come back to an old number.
            backend().add(key, time.time_ns(), timeout=GENERATION_SECONDS)
        started = dict(zip(missing, backend().get_many(*missing), strict=True))
        current = [started.get(key, value) for key, value in zip(stored, current, strict=True)]
    return None if None in current else current


def remember_in_generation(
    name: str, parts: Any, ttl_setting: str, loader: Callable[[], T], scope: str = EVERY_PAINT
) -> T:
    """Cache a listing or figure until a write that can change it (or its TTL).

    `scope`: the generation of what the value shows (cache_scopes.listing_scope); by
    default that of every paint, which any write of a paint moves on.
    """
    current = generations((GENERATION_KEY, scope))
    if current is None:
        counters.add("misses")
        return loader()
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()
    whole, scoped = current
    return remember(f"{name}:{whole}.{scoped}:{digest}", ttl_setting, loader)


def paints_changed(*paint_ids: int) -> Retirement:
    """Return what a write of many paints retires: each paint, and every cached read."""
    return Retirement(tuple(paint_key(paint_id) for paint_id in paint_ids), ALL_READS)


def forget(*keys: str) -> Retirement:
    """Return the retirement of these keys alone (a revoked token, a deactivated user)."""
    return Retirement(tuple(keys))


def retire_before_commit(retirements: Iterable[Retirement]) -> int | None:
    """Tombstone the changed entries and move their generations on; return the epoch told.

    None if the cache missed it. Never raises: any error of any backend is a miss, which
    the caller heals with a new epoch.
    """
    retirements = list(retirements)
    epoch = epochs().known()
    try:
        told = epoch is not None and _retire_under(epoch, retirements)
    except Exception as exc:
        burst_log.note(logger, f"retire:{type(exc).__name__}", "cache retire failed", exc_info=exc)
        told = False
    if not told:
        _missed(_keys(retirements))
        return None
    return epoch


def after_commit(
    retirements: Iterable[Retirement], told: int | None, new_epoch: int | None
) -> None:
    """Finish retiring what a committed write changed. Never raises: the write is saved.

    `told`: the epoch the write retired its entries under before the commit; `new_epoch`:
    the epoch its transaction started instead, when the cache could not be told. Then the
    answer waits until no worker can still believe an older epoch. Otherwise the generations
    move on once more, and the entries are retired under every other epoch
    a worker may still read under; if that fails a new epoch starts now, and is waited out.
    """
    retirements = list(retirements)
    if not retirements:
        return
    committed = time.monotonic()
    try:
        if new_epoch is not None:
            epochs().adopt(new_epoch)
            epochs().wait_out_lease(committed)
            return
        others = [epoch for epoch in epochs().held() if epoch != told]
        moved = _generations(retirements)
        again = [Retirement(generations=moved)] if moved else []
        done = _retire_under(told, again) if told is not None else False
        done = done and all(_retire_under(epoch, retirements) for epoch in others)
        if not done:
            _missed(())
            if epochs().start_new("the cache missed a write after its commit"):
                epochs().wait_out_lease(time.monotonic())
    except Exception as exc:
        burst_log.note(logger, "after-commit", "cache retire failed", exc_info=exc)


def _keys(retirements: list[Retirement]) -> list[str]:
    return [key for retirement in retirements for key in retirement.keys]


def _generations(retirements: list[Retirement]) -> frozenset[str]:
    return frozenset().union(*(retirement.generations for retirement in retirements))


def _retire_under(epoch: int, retirements: list[Retirement]) -> bool:
    """Tombstone the keys and move the generations on, in `epoch`; False if missed."""
    keys = _keys(retirements)
    if keys:
        tombstones = dict.fromkeys((f"{epoch}:{key}" for key in keys), TOMBSTONE)
        timeout = current_app.config["CACHE_TOMBSTONE_SECONDS"]
        if len(backend().set_many(tombstones, timeout=timeout)) != len(tombstones):
            return False
    moved = sorted(f"{epoch}:{key}" for key in _generations(retirements))
    return not moved or _move_on(moved)


def _move_on(stored: list[str]) -> bool:
    """Increment each generation (from the clock where it is missing); False if missed."""
    store = backend()
    if isinstance(store, ResilientRedisCache):
        return store.bump_many(stored, time.time_ns(), GENERATION_SECONDS)
    for key in stored:
        store.add(key, time.time_ns(), timeout=GENERATION_SECONDS)
        if store.inc(key) is None:
            return False
    return True


def _missed(keys: Iterable[str]) -> None:
    keys = tuple(keys)
    burst_log.note(
        logger, "invalidation-missed", "the cache missed the retirement of %d key(s)", len(keys)
    )
    try:
        signals.cache_invalidation_missed.send(backend(), keys=keys)
    except Exception:  # whoever counts it must not fail the write
        logger.exception("a listener of cache_invalidation_missed failed")


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
        "state": ("ok" if current.circuit.state == CLOSED else "degraded") if redis else "ok",
        **totals,
        "hit_rate": round(totals["hits"] / lookups, 4) if lookups else None,
    }
