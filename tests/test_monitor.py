"""`flask monitor`: the database and Redis seen from their side, and the alerts cron acts on."""

import gc
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from studio.extensions import db
from studio.observability import monitor
from studio.observability.monitor import (
    Connections,
    DatabaseView,
    Query,
    RedisView,
    Snapshot,
    Thresholds,
    check_alerts,
)
from studio.redis_backend import counters

from .conftest import free_port

on_postgresql = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
on_sqlite = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@contextmanager
def held_connection(url: str, application_name: str) -> Iterator:
    """Hold one more connection to the database under the given application_name."""
    engine = create_engine(
        url, poolclass=NullPool, connect_args={"application_name": application_name}
    )
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def once_json(runner) -> tuple[int, dict]:
    result = runner.invoke(args=["monitor", "--once", "--json"])
    assert result.stdout.count("\n") == 1, result.output
    return result.exit_code, json.loads(result.stdout)


def setting(name: str) -> int:
    return int(db.session.execute(text(f"SHOW {name}")).scalar())


@on_postgresql
def test_once_json_counts_connections_and_sizes(app, runner):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    other = f"other-client-{uuid.uuid4().hex[:8]}"
    named = "studio/web.1/4242"  # how studio names its connections now: instance, pid
    with held_connection(url, "studio"), held_connection(url, named), held_connection(url, other):
        exit_code, snapshot = once_json(runner)
    assert exit_code == 0, snapshot["alerts"]
    assert snapshot["database_status"] == "ok" and snapshot["alerts"] == []
    connections = snapshot["database"]["connections"]
    assert connections["max_connections"] == setting("max_connections")
    assert connections["reserved"] == setting("superuser_reserved_connections")
    assert connections["others_by_application"][other] == 1
    assert not connections["others_by_application"].keys() & {"studio", named}
    assert sum(connections["studio"].values()) >= 2
    in_use = sum(connections["studio"].values()) + sum(connections["others"].values())
    assert connections["in_use"] == in_use
    assert connections["left"] == connections["max_connections"] - connections["reserved"] - in_use
    tables = {table["name"]: table for table in snapshot["database"]["tables"]}
    assert {"paints", "stock_movements", "users", "api_tokens", "alembic_version"} <= set(tables)
    paints = tables["paints"]
    assert paints["total_bytes"] == db.session.scalar(
        text("SELECT pg_total_relation_size('paints')")
    )
    assert paints["index_bytes"] > 0
    assert paints["total_bytes"] >= paints["table_bytes"] + paints["index_bytes"]
    totals = [table["total_bytes"] for table in snapshot["database"]["tables"]]
    assert totals == sorted(totals, reverse=True)


@contextmanager
def sleeping_query(url: str, seconds: int) -> Iterator[int]:
    """Run pg_sleep on another connection in a thread; yield its pid, cancel it afterwards."""
    started = threading.Event()
    pid: list[int] = []
    with held_connection(url, "sleeper") as connection:

        def sleep() -> None:
            pid.append(connection.execute(text("SELECT pg_backend_pid()")).scalar())
            started.set()
            try:
                connection.execute(text(f"SELECT pg_sleep({seconds})"))
            except OperationalError:
                pass  # cancelled by the test, as intended

        thread = threading.Thread(target=sleep)
        thread.start()
        assert started.wait(5)
        try:
            yield pid[0]
        finally:
            with held_connection(url, "canceller") as canceller:
                canceller.execute(text("SELECT pg_cancel_backend(:pid)"), {"pid": pid[0]})
            thread.join(5)
            connection.rollback()


@on_postgresql
def test_a_long_query_is_listed_and_alerted(app, runner, monkeypatch):
    monkeypatch.setitem(app.config, "ALERT_QUERY_SECONDS", 0.5)
    with sleeping_query(app.config["SQLALCHEMY_DATABASE_URI"], 30) as pid:
        time.sleep(1)
        exit_code, snapshot = once_json(runner)
        text_result = runner.invoke(args=["monitor", "--once"])
    assert exit_code == 1
    longest = {query["pid"]: query for query in snapshot["database"]["longest_queries"]}
    assert longest[pid]["query"] == "SELECT pg_sleep(30)"
    assert longest[pid]["application_name"] == "sleeper" and longest[pid]["state"] == "active"
    assert 0.9 <= longest[pid]["seconds"] < 30
    [alert] = snapshot["alerts"]
    assert alert["name"] == "slow_query"
    assert f"pid {pid} (sleeper) has run" in alert["message"]
    assert "(alert at 0.5 s)" in alert["message"]
    assert text_result.exit_code == 1
    alerts_section = text_result.output.split("\nAlerts\n")[1]
    assert f"slow_query: query pid {pid}" in alerts_section


@on_postgresql
def test_unused_indexes_are_listed_but_not_constraints(app, runner):
    db.session.execute(
        text(
            "CREATE TABLE monitor_probe (id integer PRIMARY KEY, code text UNIQUE, colour text);"
            "CREATE INDEX ix_monitor_probe_colour ON monitor_probe (colour)"
        )
    )
    db.session.commit()  # into the test's transaction, which is rolled back afterwards
    _, snapshot = once_json(runner)
    unused = {index["name"]: index for index in snapshot["database"]["unused_indexes"]}
    assert unused["ix_monitor_probe_colour"]["table"] == "monitor_probe"
    assert unused["ix_monitor_probe_colour"]["bytes"] == db.session.scalar(
        text("SELECT pg_relation_size('ix_monitor_probe_colour')")
    )
    assert not {"monitor_probe_pkey", "monitor_probe_code_key"} & set(unused)


def make_snapshot(
    queries: tuple[float, ...] = (),
    in_use: int = 0,
    reserved: int = 0,
    used_memory: int = 0,
    maxmemory: int = 0,
    database_status: str = "ok",
) -> Snapshot:
    connections = Connections(100, reserved, {"active": in_use}, {}, {})
    database = DatabaseView(
        connections,
        [
            Query(100 + n, "studio", "active", seconds, "SELECT 1")
            for n, seconds in enumerate(queries)
        ],
        [],
        [],
    )
    return Snapshot(
        taken_at="2025-01-01T00:00:00Z",
        database_status=database_status,
        database_note=None if database_status == "ok" else "unreachable (OperationalError)",
        database=database if database_status == "ok" else None,
        redis=RedisView("ok", used_memory=used_memory, maxmemory=maxmemory),
    )


LIMITS = Thresholds(query_seconds=5.0, connections_percent=80.0, redis_memory_percent=85.0)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ({}, []),
        ({"queries": (6.5, 1.0)}, ["slow_query"]),
        ({"queries": (4.9,)}, []),
        # 72 of 100 - 10 reserved is 80 %: at the threshold.
        ({"in_use": 72, "reserved": 10}, ["connections"]),
        ({"in_use": 72, "reserved": 0}, []),
        ({"in_use": 71, "reserved": 10}, []),
        ({"used_memory": 90, "maxmemory": 100}, ["redis_memory"]),
        ({"used_memory": 80, "maxmemory": 100}, []),
        # maxmemory 0: Redis has no limit, so no share of it.
        ({"used_memory": 10**12, "maxmemory": 0}, []),
        ({"database_status": "unreachable"}, ["database_unreachable"]),
        ({"queries": (9.0,), "in_use": 95}, ["slow_query", "connections"]),
    ],
)
def test_alerts_fire_at_their_thresholds(parts, expected):
    alerts = check_alerts(make_snapshot(**parts), LIMITS)
    assert [alert.name for alert in alerts] == expected


def test_alert_messages_name_the_figure_and_the_threshold():
    snapshot = make_snapshot(queries=(7.25, 6.0, 1.0), in_use=72, reserved=10)
    slow, pool = check_alerts(snapshot, LIMITS)
    assert slow.message == "query pid 100 (studio) has run 7.2 s (alert at 5 s) (2 queries over)"
    assert pool.message.startswith("80 % of usable connections in use: 72 of 90 ")
    assert "alert at 80 %" in pool.message


@pytest.fixture
def redis_prefix(redis_url):
    prefix = f"monitor-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = Redis.from_url(redis_url)
    keys = list(client.scan_iter(prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


REDIS_THREADS = {"studio-cache-fills", "studio-near-cache", "studio-cache-epoch"}


def other_apps_stopped_counting() -> None:
    """Let the Redis threads of earlier tests' apps end: they count into this process's
    counters, which the monitor adds to the shared ones (one app per process outside tests)."""
    gc.collect()  # an app that is gone lets its threads end within a second
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        thread.name in REDIS_THREADS for thread in threading.enumerate()
    ):
        time.sleep(0.05)


def test_redis_memory_hits_and_studio_counters(extra_apps, redis_url, redis_prefix):
    other_apps_stopped_counting()
    client = Redis.from_url(redis_url)
    client.hset(redis_prefix + "cache-counters", mapping={"hits": 7, "misses": 3, "errors": 1})
    client.get(redis_prefix + "cache-counters-missing")
    maxmemory = int(client.config_get("maxmemory")["maxmemory"])
    client.close()
    counters.reset()
    worker = extra_apps(REDIS_URL=redis_url, CACHE_KEY_PREFIX=redis_prefix)
    exit_code, snapshot = once_json(worker.test_cli_runner())
    view = snapshot["redis"]
    assert view["status"] == "ok"
    assert view["used_memory"] > 0 and view["maxmemory"] == maxmemory
    assert view["connected_clients"] >= 1
    assert view["keyspace_misses"] >= 1 and 0 <= view["hit_rate"] <= 1
    assert view["studio_cache"] == {"hits": 7, "misses": 3, "errors": 1, "hit_rate": 0.7}
    text_output = worker.test_cli_runner().invoke(args=["monitor", "--once"]).output
    assert "studio cache  70.0 % (hits 7, misses 3, errors 1)" in text_output


def test_unreachable_redis_is_reported_and_the_rest_shown(extra_apps, backend):
    worker = extra_apps(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", CACHE_KEY_PREFIX="mon:")
    result = worker.test_cli_runner().invoke(args=["monitor", "--once"])
    assert result.exit_code == 0, result.output
    assert "Redis\n  unreachable (ConnectionError)\n" in result.output
    database_part = "Connections: " if backend == "postgresql" else "needs PostgreSQL"
    assert database_part in result.output
    exit_code, snapshot = once_json(worker.test_cli_runner())
    assert exit_code == 0
    assert (snapshot["redis"]["status"], snapshot["redis"]["error"]) == (
        "unreachable",
        "ConnectionError",
    )
    assert snapshot["redis"]["used_memory"] is None


@on_postgresql
def test_unreachable_database_is_an_alert(extra_apps):
    worker = extra_apps(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    exit_code, snapshot = once_json(worker.test_cli_runner())
    assert exit_code == 1
    assert snapshot["database"] is None and snapshot["database_status"] == "unreachable"
    assert [alert["name"] for alert in snapshot["alerts"]] == ["database_unreachable"]


@on_sqlite
def test_on_sqlite_the_database_view_needs_postgresql(runner):
    result = runner.invoke(args=["monitor", "--once"])
    assert result.exit_code == 0, result.output
    assert "Database\n  the database view needs PostgreSQL; this is sqlite" in result.output
    assert "\nRedis\n" in result.output and "\nAlerts\n  none" in result.output


@on_sqlite
@pytest.mark.parametrize("interval", ["0", "-1", "0.05"])
def test_a_too_short_interval_is_a_usage_error(runner, interval):
    result = runner.invoke(args=["monitor", "--interval", interval])
    assert result.exit_code == 2
    assert "Invalid value for '--interval'" in result.output


@pytest.mark.parametrize("as_json", [True, False])
def test_the_live_view_redraws_every_interval(app, capsys, as_json):
    monitor.watch(0.1, as_json=as_json, frames=2)
    output = capsys.readouterr().out
    if as_json:
        frames = [json.loads(line) for line in output.splitlines()]
        assert len(frames) == 2 and all("alerts" in frame for frame in frames)
    else:
        assert output.count("studio monitor, ") == 2
        assert "Ctrl-C" not in output  # not a terminal: no clearing, no hint


def test_ctrl_c_ends_the_live_view_quietly(runner, monkeypatch):
    shown = []

    def show_then_interrupt(as_json):
        if shown:
            raise KeyboardInterrupt
        shown.append(as_json)
        return []

    monkeypatch.setattr(monitor, "show", show_then_interrupt)
    result = runner.invoke(args=["monitor", "--interval", "0.1"])
    assert result.exit_code == 0 and result.output == ""
    assert shown == [False]


def test_the_monitor_has_settings_of_its_own_apart_from_the_workers_alerts(app):
    """ALERT_POOL_PERCENT and ALERT_MEMORY_PERCENT are a worker's pool and the machine's memory."""
    config = {
        **app.config,
        "ALERT_POOL_PERCENT": 1.0,
        "ALERT_MEMORY_PERCENT": 2.0,
        "ALERT_CONNECTIONS_PERCENT": 70.0,
        "ALERT_REDIS_MEMORY_PERCENT": 90.0,
    }
    limits = Thresholds.from_config(config)
    assert (limits.connections_percent, limits.redis_memory_percent) == (70.0, 90.0)
    assert app.config["ALERT_CONNECTIONS_PERCENT"] == 80.0
    assert app.config["ALERT_REDIS_MEMORY_PERCENT"] == 85.0
