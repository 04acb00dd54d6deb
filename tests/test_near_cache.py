"""The near cache: each worker's copies of Redis values, retired by Redis's invalidations."""

import time
import uuid

import pytest
from redis import Redis

from studio.near_cache import MISSING, NearCache
from studio.services import accounts, cached_reads
from tests.conftest import make_api
from tests.test_cache import api_for, committed_paint, redis_settings


def answered(near: NearCache) -> None:
    """Wait until Redis has answered a ping: from then on the tier may be served."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        near.tick()
        if near.connection is not None and time.monotonic() - near.answered_ping < near.silence:
            return
        time.sleep(0.01)
    raise AssertionError("the near cache never got ready")


@pytest.fixture
def tracked(redis_url):
    """A near cache set up by hand, without its thread: every drain is the test's own."""
    prefix = f"near-test-{uuid.uuid4().hex[:8]}:"
    made = []

    def make(silence: float = 5.0, healthy=lambda: True) -> NearCache:
        near = NearCache(
            client=lambda: Redis.from_url(redis_url, socket_timeout=1, protocol=2),
            prefix=prefix,
            max_entries=3,
            max_age=60,
            silence=silence,
            healthy=healthy,
        )
        near.watching = True  # no thread: the test drains
        near.set_up()
        answered(near)
        made.append(near)
        return near

    yield make, prefix, Redis.from_url(redis_url)
    for near in made:
        if near.connection is not None:
            near.connection.disconnect()


def kept(near: NearCache, key: str, value, epoch: int = 0) -> None:
    near.get_many([key], epoch)  # as a request does first
    near.keep(near.mark(), {key: value})
    assert near.get_many([key], epoch) == [value]


def test_a_change_by_another_client_is_not_served_on_the_next_read(tracked):
    """Its invalidation is already in the socket when the write returns: drained first."""
    make, prefix, redis = tracked
    near = make()
    kept(near, "0:paint:1", "old")
    redis.set(f"{prefix}0:paint:1", "new")
    assert near.get_many(["0:paint:1"], 0) == [MISSING]


def test_a_value_read_while_its_key_changed_is_not_kept(tracked):
    make, prefix, redis = tracked
    near = make()
    near.get_many(["0:paint:2"], 0)
    mark = near.mark()  # the Redis read starts
    redis.set(f"{prefix}0:paint:2", "new")  # a writer, while the read is in flight
    near.keep(mark, {"0:paint:2": "old"})
    assert near.get_many(["0:paint:2"], 0) == [MISSING]


def test_a_flush_of_redis_empties_it(tracked):
    make, prefix, redis = tracked
    near = make()
    kept(near, "0:paint:3", "old")
    near.invalidate(None)
    assert near.get_many(["0:paint:3"], 0) == [MISSING]


def test_a_new_epoch_empties_it(tracked):
    near = tracked[0]()
    kept(near, "0:paint:4", "old")
    assert near.get_many(["0:paint:4"], 1) == [MISSING]
    kept(near, "1:paint:4", "new", epoch=1)


def test_a_lost_connection_empties_it_and_bypasses_it_until_tracking_is_back(tracked):
    make, _, redis = tracked
    near = make()
    kept(near, "0:paint:5", "old")
    redis.execute_command("CLIENT", "KILL", "ID", near.client_id)
    assert near.get_many(["0:paint:5"], 0) is None
    assert near.connection is None and not near.entries
    near.keep(near.mark(), {"0:paint:5": "old"})
    assert not near.entries
    near.next_setup = 0  # instead of waiting for the retry
    answered(near)
    assert near.get_many(["0:paint:5"], 0) == [MISSING]


def test_a_redis_that_stops_answering_empties_it(tracked):
    """No answer to its pings within `silence`: a writer may have given up on Redis."""
    make, prefix, redis = tracked
    near = make(silence=0.2)
    kept(near, "0:paint:6", "old")
    redis.execute_command("CLIENT", "PAUSE", 600, "ALL")
    time.sleep(0.3)
    assert near.get_many(["0:paint:6"], 0) is None
    assert not near.entries
    time.sleep(0.4)
    answered(near)
    assert near.get_many(["0:paint:6"], 0) == [MISSING]


def test_an_open_redis_breaker_empties_it(tracked):
    healthy = [True]
    near = tracked[0](healthy=lambda: healthy[0])
    kept(near, "0:paint:7", "old")
    healthy[0] = False
    assert near.get_many(["0:paint:7"], 0) is None
    assert near.connection is None and not near.entries


def test_it_keeps_the_most_recently_used_entries_for_at_most_max_age(tracked):
    near = tracked[0]()
    near.get_many([], 0)
    for number in range(4):
        near.keep(near.mark(), {f"0:paint:{number}": number})
    assert near.get_many([f"0:paint:{n}" for n in range(4)], 0) == [MISSING, 1, 2, 3]
    near.max_age = 0.05
    near.keep(near.mark(), {"0:paint:9": 9})
    time.sleep(0.06)
    assert near.get_many(["0:paint:9"], 0) == [MISSING]


# In the app, with Redis as the cache.


@pytest.fixture
def worker_pair(committed_app, redis_url, extra_apps):
    prefix = f"near-app-{uuid.uuid4().hex[:8]}:"
    pair = [extra_apps(**redis_settings(redis_url, prefix)) for _ in range(2)]
    yield pair
    redis = Redis.from_url(redis_url)
    keys = list(redis.scan_iter(prefix + "*"))
    if keys:
        redis.delete(*keys)


def warm(call, path: str) -> None:
    """Read until the near cache has the answer (Redis stored it, then a hit kept it)."""
    for _ in range(50):
        assert call("get", path).status_code == 200
        time.sleep(0.01)


def round_trips(worker, monkeypatch) -> list:
    calls: list = []
    with worker.app_context():
        store = cached_reads.backend()
    get_many = store.get_many
    monkeypatch.setattr(store, "get_many", lambda *keys: calls.append(keys) or get_many(*keys))
    return calls


def test_a_warm_paint_read_makes_no_round_trip(committed_app, worker_pair, monkeypatch):
    worker = worker_pair[0]
    call = api_for(worker, make_api(committed_app).token)
    path = f"/api/v1/paints/{committed_paint(name='Hot', brand='B')}"
    warm(call, path)
    calls = round_trips(worker, monkeypatch)
    assert call("get", path).get_json()["name"] == "Hot"
    assert calls == []


def test_a_write_on_another_worker_is_seen_on_the_next_read(committed_app, worker_pair):
    reader, writer = worker_pair
    token = make_api(committed_app).token
    path = f"/api/v1/paints/{committed_paint(name='Old', brand='B')}"
    warm(api_for(reader, token), path)
    assert (
        api_for(writer, token)("patch", path, json={"version": 1, "name": "New"}).status_code == 200
    )
    assert api_for(reader, token)("get", path).get_json()["name"] == "New"


def test_a_token_revoked_elsewhere_is_refused_on_the_next_request(
    committed_app, worker_pair, monkeypatch
):
    reader, revoker = worker_pair
    call = api_for(reader, make_api(committed_app).token)
    path = f"/api/v1/paints/{committed_paint(name='Hot', brand='B')}"
    warm(call, path)
    calls = round_trips(reader, monkeypatch)
    assert call("get", path).status_code == 200 and calls == []  # the token came from the tier
    with revoker.app_context():
        accounts.revoke_tokens("alice")
    assert call("get", path).status_code == 401


def test_tombstones_are_never_kept(committed_app, worker_pair):
    worker = worker_pair[0]
    with worker.test_request_context():
        key = cached_reads.stored_key(cached_reads.paint_key(1))
        cached_reads.backend().set(key, cached_reads.TOMBSTONE)
        near = worker.extensions[cached_reads.NEAR_KEY]
        answered(near)
        for _ in range(3):
            assert cached_reads.read_many([key]) == [cached_reads.TOMBSTONE]
        assert key not in near.entries


def test_no_near_cache_without_redis_or_when_turned_off(app, redis_url, extra_apps):
    assert app.extensions[cached_reads.NEAR_KEY] is None
    off = extra_apps(**redis_settings(redis_url, "near-off:"), NEAR_CACHE=False)
    assert off.extensions[cached_reads.NEAR_KEY] is None


def test_a_read_pings_redis_only_a_few_times_per_silence(tracked):
    """A ping on every read would cost each request a system call for nothing."""
    near = tracked[0](silence=10)
    sent = len(near.pings), near.ping_sent
    for _ in range(20):
        near.get_many(["0:paint:1"], 0)
    assert (len(near.pings), near.ping_sent) == sent
