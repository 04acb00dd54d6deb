"""Caching: warm reads cost no SQL, writes retire what they change, Redis outages hurt nothing."""

import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager

import pytest
from redis import Redis
from sqlalchemy import event, func, select

from studio import logs
from studio.extensions import cache, db
from studio.models import CacheEpoch, User
from studio.redis_backend import counters
from studio.services import accounts, cached_reads, paints

from .conftest import PASSWORD, Admin, free_port, make_api, make_app, sign_in_as

READ_PATHS = [
    "/api/v1/paints/{id}",
    "/api/v1/paints",
    "/api/v1/paints?q=crimson&brand=Citadel&sort=-price",
    "/api/v1/paints?stock=low_stock&per_page=5",
]


@contextmanager
def counting_statements():
    """Collect every SQL statement sent while the block runs."""
    statements: list[str] = []
    engine = db.engines[None].engine

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("path", READ_PATHS)
def test_warm_reads_send_no_sql(api, make_paint, path):
    paint = make_paint(name="Crimson Fist", stock=3)
    url = path.format(id=paint.id)
    cold = api.get(url)
    assert cold.status_code == 200
    with counting_statements() as statements:
        warm = api.get(url)
    assert warm.get_json() == cold.get_json()
    assert statements == []


def test_warm_admin_pages_send_no_sql_for_the_user(app, make_paint):
    api = make_api(app, "admin")
    client = app.test_client()
    sign_in_as(client, api.user.id)
    paint = make_paint()
    for path in ("/admin/", "/admin/paints", f"/admin/paints/{paint.id}"):
        Admin(client).get(path)
        with counting_statements() as statements:
            assert client.get(path).status_code == 200
        # Only the (uncached) history may be read; never the user or the paints.
        assert not [
            sql for sql in statements if re.search(r"FROM (users|api_tokens|paints)\b", sql)
        ]


def test_writes_retire_what_they_change(api, make_paint):
    paint = make_paint(name="Before", stock=5, price="1.00", color_family="Red")
    paths = [f"/api/v1/paints/{paint.id}", "/api/v1/paints?color_family=Red", "/api/v1/stats"]
    for path in paths:
        api.get(path)
    api.patch(f"/api/v1/paints/{paint.id}", json={"version": 1, "name": "After", "price": "2.00"})
    api.post(f"/api/v1/paints/{paint.id}/stock", json={"delta": 5, "reason": "Delivery"})
    detail, listing, stats = (api.get(path).get_json() for path in paths)
    assert (detail["name"], detail["stock"], detail["version"]) == ("After", 10, 3)
    assert listing["items"][0]["name"] == "After"
    assert (stats["units"], stats["value"]) == (10, "20.00")
    api.delete(f"/api/v1/paints/{paint.id}")
    assert api.get(paths[0]).status_code == 404
    assert api.get(paths[1]).get_json()["items"] == []


def test_revoked_token_is_refused_even_when_cached(api):
    from studio.services import accounts

    assert api.get("/api/v1/stats").status_code == 200
    accounts.revoke_tokens("alice")
    assert api.get("/api/v1/stats").status_code == 401


def test_hit_rate_is_counted(api, make_paint):
    paint = make_paint()
    for _ in range(5):
        api.get(f"/api/v1/paints/{paint.id}")
    status = cached_reads.status()
    assert status["backend"] == "SimpleCache" and status["state"] == "ok"
    # Each request looks up the token and the paint: 2 misses first, then hits.
    assert (status["hits"], status["misses"]) == (8, 2)
    assert status["hit_rate"] == 0.8


def test_several_workers_without_redis_warn_and_keep_ttls_short(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.delenv("REDIS_URL", raising=False)
    with caplog.at_level(logging.WARNING, logger="studio"):
        app = make_app(
            f"sqlite:///{tmp_path / 'x.db'}", STUDIO_ENV="production", SECRET_KEY="x" * 32
        )
    assert app.config["CACHE_TYPE"] == "SimpleCache"
    assert (
        max(app.config[name] for name in ("PAINT_CACHE_TTL", "LIST_CACHE_TTL", "AUTH_CACHE_TTL"))
        == 5
    )
    assert "each worker keeps its own cache" in caplog.text


# --- Redis -----------------------------------------------------------------------------


def redis_settings(redis_url: str, prefix: str) -> dict:
    return {"REDIS_URL": redis_url, "CACHE_KEY_PREFIX": prefix, "CACHE_CIRCUIT_OPEN_SECONDS": 1}


@pytest.fixture
def workers(committed_app, redis_url, extra_apps):
    """Two app instances, as two gunicorn workers, sharing the database and Redis."""
    prefix = f"studio-test-{uuid.uuid4().hex[:8]}:"
    pair = [extra_apps(**redis_settings(redis_url, prefix)) for _ in range(2)]
    assert type(pair[0].extensions["cache"][cache]).__name__ == "ResilientRedisCache"
    counters.reset()
    yield pair
    redis = Redis.from_url(redis_url)
    keys = list(redis.scan_iter(prefix + "*"))
    if keys:
        redis.delete(*keys)


def committed_paint(**fields) -> int:
    """Create a paint and end the session, so other workers' connections are not blocked."""
    paint_id = paints.create_paint(fields, None).id
    db.session.remove()
    return paint_id


def api_for(worker, token):
    client = worker.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    return lambda method, path, **kwargs: getattr(client, method)(path, headers=headers, **kwargs)


def test_a_write_on_one_worker_is_seen_at_once_by_the_other(committed_app, workers):
    token = make_api(committed_app).token
    first, second = (api_for(worker, token) for worker in workers)
    paint = first(
        "post", "/api/v1/paints", json={"name": "Shared", "brand": "B", "stock": 1}
    ).get_json()
    path = f"/api/v1/paints/{paint['id']}"
    for _ in range(2):  # cached on both workers now
        assert second("get", path).get_json()["name"] == "Shared"
        assert second("get", "/api/v1/paints?q=shared").get_json()["pagination"]["total"] == 1
    first("patch", path, json={"version": 1, "name": "Renamed"})
    assert second("get", path).get_json()["name"] == "Renamed"
    assert second("get", "/api/v1/paints?q=shared").get_json()["pagination"]["total"] == 0
    first("post", f"{path}/stock", json={"delta": 4, "reason": "Delivery"})
    assert second("get", path).get_json()["stock"] == 5
    assert second("get", "/api/v1/stats").get_json()["units"] == 5


def test_counters_add_up_over_workers(committed_app, workers):
    token = make_api(committed_app).token
    paint_id = committed_paint(name="Counted", brand="B")
    for worker in workers:
        call = api_for(worker, token)
        for _ in range(3):
            call("get", f"/api/v1/paints/{paint_id}")
            # A miss's fill is sent by the worker's thread: let it land before the next read.
            assert worker.extensions[cached_reads.FILLS_KEY].settled()
    with workers[0].app_context():
        status = cached_reads.status()
    assert status["shared"] is True and status["state"] == "ok"
    # 6 requests x (token + paint) lookups; only the very first of each key missed.
    assert status["hits"] + status["misses"] == 12
    assert status["misses"] == 2


# --- A Redis of our own, to stop and start ---------------------------------------------


class RedisServer:
    """A throwaway redis-server this test may stop and restart."""

    def __init__(self, directory) -> None:
        self.port = free_port()
        self.directory = directory
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            shutil.which("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)


@pytest.fixture
def own_redis(tmp_path, redis_url):
    if not shutil.which("redis-server"):
        # As for Chromium: on CI a missing server fails the run instead of hiding the tests.
        missing = "redis-server is not installed (Debian's redis-server package)"
        if os.environ.get("CI"):
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


def test_redis_outage_is_survived_logged_once_and_recovered(
    committed_app, own_redis, extra_apps, caplog
):
    worker = extra_apps(**redis_settings(own_redis.url, "outage:"))
    token = make_api(committed_app).token
    call = api_for(worker, token)
    paint_id = committed_paint(name="Survivor", brand="B", stock=2)
    path = f"/api/v1/paints/{paint_id}"
    assert call("get", path).status_code == 200
    caplog.set_level(logging.WARNING, logger="studio")

    own_redis.stop()
    for _ in range(10):
        started = time.monotonic()
        response = call("get", path)
        assert response.status_code == 200 and response.get_json()["name"] == "Survivor"
        assert time.monotonic() - started < 0.5
    assert (
        call("patch", path, json={"version": 1, "name": "Changed in the outage"}).status_code == 200
    )
    assert call("get", path).get_json()["name"] == "Changed in the outage"
    with worker.app_context():
        assert cached_reads.status()["state"] == "degraded"
    outages = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(outages) == 1

    own_redis.start()
    time.sleep(1.1)  # the open-circuit period
    for _ in range(3):
        assert call("get", path).get_json()["name"] == "Changed in the outage"
    with worker.app_context():
        assert cached_reads.status()["state"] == "ok"
    assert len([r for r in caplog.records if "reachable again" in r.getMessage()]) == 1
    # Caching is back: the paint is in the new Redis.
    with worker.app_context():
        key = cached_reads.stored_key(cached_reads.paint_key(paint_id))
    assert Redis.from_url(own_redis.url).exists(f"outage:{key}")


def test_a_write_redis_missed_is_not_served_after_it(committed_app, own_redis, extra_apps):
    """Redis stalls during a write, keeping its old copy: the copy must not be served later."""
    worker = extra_apps(**redis_settings(own_redis.url, "stall:"))
    call = api_for(worker, make_api(committed_app).token)
    path = f"/api/v1/paints/{committed_paint(name='Old', brand='B')}"
    assert call("get", path).get_json()["name"] == "Old"  # cached in Redis
    Redis.from_url(own_redis.url).execute_command("CLIENT", "PAUSE", 1500, "ALL")
    assert call("patch", path, json={"version": 1, "name": "New"}).status_code == 200
    time.sleep(1.6)
    assert call("get", path).get_json()["name"] == "New"


def test_redis_down_at_start_serves_from_the_database(committed_app, redis_url, extra_apps):
    worker = extra_apps(**redis_settings(f"redis://127.0.0.1:{free_port()}/0", "down:"))
    call = api_for(worker, make_api(committed_app).token)
    paint_id = committed_paint(name="Fine", brand="B")
    started = time.monotonic()
    for _ in range(5):
        assert call("get", f"/api/v1/paints/{paint_id}").status_code == 200
    assert time.monotonic() - started < 2
    with worker.app_context():
        assert cached_reads.status()["state"] == "degraded"


def test_a_warm_paint_read_asks_the_cache_once(api, make_paint, monkeypatch):
    """The token and the paint come in one round trip (one MGET on Redis)."""
    paint = make_paint()
    api.get(f"/api/v1/paints/{paint.id}")
    store = cached_reads.backend()
    calls, get, get_many = [], store.get, store.get_many

    def counted_get_many(*keys):
        calls.append(("get_many", keys))
        monkeypatch.setattr(store, "get", get)  # SimpleCache answers get_many with get
        try:
            return get_many(*keys)
        finally:
            monkeypatch.setattr(store, "get", counted_get)

    def counted_get(key):
        calls.append(("get", key))
        return get(key)

    monkeypatch.setattr(store, "get", counted_get)
    monkeypatch.setattr(store, "get_many", counted_get_many)
    assert api.get(f"/api/v1/paints/{paint.id}").status_code == 200
    assert [name for name, _ in calls] == ["get_many"]
    assert f"0:{cached_reads.paint_key(paint.id)}" in calls[0][1]


def test_a_cache_that_raises_after_a_commit_never_fails_the_write(
    committed_app, workers, monkeypatch, caplog
):
    """cachelib raised RuntimeError when a reader re-cached a key being deleted: a 500."""
    token = make_api(committed_app).token
    writer, reader = (api_for(worker, token) for worker in workers)
    paint_id = committed_paint(name="Raced", brand="B", stock=1)
    assert reader("get", f"/api/v1/paints/{paint_id}").get_json()["stock"] == 1
    with workers[0].app_context():
        epoch_before = cached_reads.epochs().current()

    def refuse(*args, **kwargs):
        raise RuntimeError("Failed to delete keys")

    # Flask-Caching's RedisCache, under studio's guard: every way of retiring a key fails.
    redis_cache = type(workers[0].extensions["cache"][cache]).__mro__[1]
    for name in ("set_many", "delete_many", "unlink", "inc"):
        monkeypatch.setattr(redis_cache, name, refuse)
    caplog.set_level(logging.WARNING, logger="studio")
    monkeypatch.setattr(cached_reads, "burst_log", logs.BurstLog())  # no earlier bursts
    written = writer("post", f"/api/v1/paints/{paint_id}/stock", json={"delta": 2, "reason": "x"})
    monkeypatch.undo()

    assert written.status_code == 201 and written.get_json()["paint"]["stock"] == 3
    assert any("missed the retirement" in record.getMessage() for record in caplog.records)
    with workers[1].app_context():
        cached_reads.epochs().refresh()  # what its watcher does every poll
        assert cached_reads.epochs().current() != epoch_before
    assert reader("get", f"/api/v1/paints/{paint_id}").get_json()["stock"] == 3


def test_a_write_that_started_an_epoch_is_answered_only_once_no_worker_believes_the_old_one(
    committed_app, workers, monkeypatch
):
    """Redis missed the writer's retirement; the reader must not serve its copy after the answer."""
    token = make_api(committed_app).token
    writer, reader = (api_for(worker, token) for worker in workers)
    paint_id = committed_paint(name="Before", brand="B", stock=1)
    assert reader("get", f"/api/v1/paints/{paint_id}").get_json()["stock"] == 1  # in Redis
    redis_cache = type(workers[0].extensions["cache"][cache]).__mro__[1]
    monkeypatch.setattr(redis_cache, "set_many", lambda *args, **kwargs: [])  # not told

    written = writer("post", f"/api/v1/paints/{paint_id}/stock", json={"delta": 2, "reason": "x"})
    monkeypatch.undo()

    assert written.status_code == 201
    new_epoch = workers[0].extensions[cached_reads.EPOCHS_KEY].value
    with workers[1].app_context():
        # What the reader would read under now: the new epoch, or none (the database).
        assert cached_reads.epochs().current() in (new_epoch, None)
    assert reader("get", f"/api/v1/paints/{paint_id}").get_json()["stock"] == 3


def test_a_writer_behind_on_the_epoch_retires_under_the_one_readers_moved_to(
    committed_app, workers, monkeypatch
):
    """A new epoch the writer has not read yet: readers under it must not keep the old copy."""
    token = make_api(committed_app).token
    writer, reader = (api_for(worker, token) for worker in workers)
    paint_id = committed_paint(name="Before", brand="B", stock=1)
    assert writer("get", f"/api/v1/paints/{paint_id}").status_code == 200
    with workers[0].app_context():
        behind = cached_reads.epochs()
        monkeypatch.setattr(behind, "refresh", lambda: None)  # its watcher is late
    with workers[1].app_context():
        assert cached_reads.epochs().start_new("another worker missed a write")
    for _ in range(2):  # cached under the reader's new epoch
        assert reader("get", f"/api/v1/paints/{paint_id}").get_json()["stock"] == 1
        assert reader("get", "/api/v1/stats").get_json()["units"] == 1

    written = writer("post", f"/api/v1/paints/{paint_id}/stock", json={"delta": 2, "reason": "x"})

    assert written.status_code == 201
    assert behind.value != workers[1].extensions[cached_reads.EPOCHS_KEY].value
    assert reader("get", f"/api/v1/paints/{paint_id}").get_json()["stock"] == 3
    assert reader("get", "/api/v1/stats").get_json()["units"] == 3


def test_a_worker_that_cannot_read_the_epoch_stops_reading_the_cache(workers, monkeypatch):
    """Its lease runs out: what it read may be older than a write another worker waited out."""
    with workers[0].app_context():
        epochs = cached_reads.epochs()
        assert epochs.current() is not None
        monkeypatch.setattr(epochs, "refresh", lambda: None)  # the database stopped answering
        time.sleep(0.1)  # a read its watcher had already begun
        epochs.believed_until = time.monotonic() + 0.2
        assert epochs.current() is not None
        time.sleep(0.25)
        assert epochs.current() is None
        assert epochs.known() is not None  # a write still retires under it


def test_a_command_that_retires_a_key_first_thing_starts_no_new_epoch(
    committed_app, redis_url, extra_apps, caplog
):
    """revoke-token, change-password and deactivate-admin, each in a process of its own, had
    read nothing from the cache: their write counted as missed and retired the whole cache."""
    settings = redis_settings(redis_url, f"command-{uuid.uuid4().hex[:8]}:")
    with committed_app.app_context():
        db.session.add(User(username="bob", password_hash=PASSWORD))
        db.session.commit()
        token_id = accounts.create_token("bob", "script")[0].id
        epochs_before = db.session.scalar(select(func.count(CacheEpoch.id)))
        db.session.remove()
    command = extra_apps(**settings)  # a fresh process: `flask revoke-token bob 1`
    with caplog.at_level(logging.WARNING, logger="studio"), command.app_context():
        result = command.test_cli_runner().invoke(args=["revoke-token", "bob", str(token_id)])
    assert result.exit_code == 0, result.output
    with committed_app.app_context():
        assert db.session.scalar(select(func.count(CacheEpoch.id))) == epochs_before
        db.session.remove()
    assert "missed" not in caplog.text
