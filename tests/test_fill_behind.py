"""Readers' cache fills sent by a thread: they land, never over a tombstone, never late."""

import threading
import time
import uuid

import pytest
from redis import Redis

from studio.extensions import cache
from studio.fill_behind import FillBehind
from studio.services import cached_reads

from .conftest import make_api


def test_queued_fills_are_sent_together_and_stale_ones_dropped():
    batches = []
    filler = FillBehind(batches.append, max_delay=0.2)
    gate = threading.Event()
    filler.send = lambda batch: (gate.wait(2), batches.append(batch))
    filler.add("first", 1, 60)  # the thread takes it and waits at the gate
    time.sleep(0.05)
    for number in range(5):
        filler.add(f"key{number}", number, 60)
    time.sleep(0.3)  # these five are now older than max_delay
    filler.add("fresh", 9, 60)
    gate.set()
    assert filler.settled()
    assert batches == [[("first", 1, 60)], [("fresh", 9, 60)]]
    assert filler.dropped == 5


def test_a_full_queue_skips_fills_instead_of_growing():
    gate = threading.Event()
    filler = FillBehind(lambda batch: gate.wait(2), max_delay=5, max_queued=3)
    for number in range(10):
        filler.add(f"key{number}", number, 60)
    assert filler.dropped == 7
    gate.set()
    assert filler.settled()


@pytest.fixture
def redis_app(committed_app, redis_url, extra_apps):
    prefix = f"studio-test-{uuid.uuid4().hex[:8]}:"
    app = extra_apps(REDIS_URL=redis_url, CACHE_KEY_PREFIX=prefix)
    yield app
    redis = Redis.from_url(redis_url)
    keys = list(redis.scan_iter(prefix + "*"))
    if keys:
        redis.delete(*keys)


def test_a_miss_is_stored_by_the_thread_and_a_tombstone_wins(committed_app, redis_app):
    token = make_api(committed_app).token
    headers = {"Authorization": f"Bearer {token}"}
    client = redis_app.test_client()
    paint = client.post(
        "/api/v1/paints", json={"name": "Filled", "brand": "B"}, headers=headers
    ).get_json()
    filler = redis_app.extensions[cached_reads.FILLS_KEY]
    assert isinstance(filler, FillBehind)
    key = cached_reads.paint_key(paint["id"])
    with redis_app.app_context():
        stored = cached_reads.stored_key(key)
        store = cache.cache
        store.delete(stored)
        assert client.get(f"/api/v1/paints/{paint['id']}", headers=headers).status_code == 200
        assert filler.settled()
        assert store.get(stored).name == "Filled"
        # A writer's tombstone, then a fill of the old value that was queued before it.
        store.set(stored, cached_reads.TOMBSTONE)
        filler.add(stored, "old copy", 60)
        assert filler.settled()
        assert store.get(stored) == cached_reads.TOMBSTONE


def test_fills_can_be_sent_from_the_request_instead(committed_app, redis_url, extra_apps):
    prefix = f"fills-{uuid.uuid4().hex[:8]}:"
    app = extra_apps(REDIS_URL=redis_url, CACHE_KEY_PREFIX=prefix, CACHE_FILL_BEHIND=False)
    assert app.extensions[cached_reads.FILLS_KEY] is None
