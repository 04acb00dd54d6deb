"""Each worker's pool sized from the server at start: the arithmetic, the names, the probe."""

import logging
import os
from contextlib import ExitStack, contextmanager

import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from studio.config import ConfigError
from studio.connection_budget import (
    HEADROOM,
    KEY,
    MAX_APPLICATION_NAME,
    Hints,
    ServerView,
    application_name,
    instance_id,
    parse_application_name,
    probe_url,
    recommend,
    size_pools,
)
from studio.extensions import db
from studio.observability.budget import Deployment, advise

from .conftest import PG_SKIP_REASON, PG_VARIABLE, free_port, make_app

ME = ("web-1", 4242)


def live(instances: int, workers: int) -> tuple[tuple[str, int], ...]:
    """Return the studio processes of `instances` other live instances of `workers` each."""
    return tuple((f"peer-{i}", 1000 + w) for i in range(instances) for w in range(workers))


@pytest.mark.parametrize("max_connections", [20, 25, 100, 500])
@pytest.mark.parametrize("instances", [1, 2, 3, 4])
@pytest.mark.parametrize("threads", range(1, 9))
def test_pools_fit_the_server_and_cover_the_threads(max_connections, instances, threads):
    view = ServerView(max_connections, 3, 0, None, live(instances - 1, 2))
    hints = Hints(workers=2, threads=threads)  # WEB_CONCURRENCY=2, no STUDIO_INSTANCES
    sizing = size_pools(view, ME, hints)
    counted = instances + 1  # the live ones, this one among them, and a deploy's overlap
    assert (sizing.instances, sizing.workers) == (instances, 2)
    per_process = (max_connections - 3 - HEADROOM) // (counted * 2)
    assert sizing.per_process == per_process
    if per_process >= threads:
        assert sizing.fits and sizing.problem is None
        assert threads <= sizing.pool_size <= threads + 1
        assert counted * 2 * (sizing.pool_size + sizing.max_overflow) <= view.available
    else:
        assert not sizing.fits and f"fewer than its {threads} thread(s)" in sizing.problem
        assert sizing.pool_size == max(per_process, 1) and sizing.max_overflow == 0

    chosen = recommend(view, ME, hints)
    assert chosen.sizing.fits
    assert chosen.sizing.pool_size >= chosen.threads
    assert (
        counted * chosen.sizing.workers * (chosen.sizing.pool_size + chosen.sizing.max_overflow)
        <= view.available
    )
    # What tune recommends is what the start-up sizing picks, and the check then accepts.
    followed = Hints(workers=chosen.workers, threads=chosen.threads)
    assert size_pools(view, ME, followed) == chosen.sizing
    plan = Deployment(
        instances=1,
        workers=chosen.workers,
        threads=chosen.threads,
        pool_size=chosen.sizing.pool_size,
        max_overflow=chosen.sizing.max_overflow,
        pool_recycle=300,
    )
    advice = advise(view, plan, me=ME)
    assert advice.problems == []
    assert advice.recommended["DB_POOL_SIZE"] == chosen.sizing.pool_size


def test_eight_threads_on_a_small_server_get_eight_connections_or_fewer_threads():
    """The advice that contradicted the start-up check: pool_size 7 for 8 threads."""
    view = ServerView(20, 3, 0, None)
    plan = Deployment(1, 1, 8, 5, 10, 300)
    advice = advise(view, plan, me=ME)
    recommended = advice.recommended
    threads = recommended.get("THREADS_PER_WORKER", 8)
    assert recommended["DB_POOL_SIZE"] >= threads
    followed = Deployment(
        1,
        recommended["WEB_CONCURRENCY"],
        threads,
        recommended["DB_POOL_SIZE"],
        recommended["DB_MAX_OVERFLOW"],
        300,
    )
    assert advise(view, followed, me=ME).problems == []


def test_hints_are_minimums_and_live_counts_raise_them():
    view = ServerView(100, 3, 0, None, live(2, 3))
    sizing = size_pools(view, ME, Hints(instances=1, workers=2))
    assert (sizing.instances, sizing.workers) == (3, 3)
    sizing = size_pools(view, ME, Hints(instances=5, workers=4))
    assert (sizing.instances, sizing.workers) == (5, 4)


def test_this_process_and_its_siblings_are_counted_once():
    view = ServerView(100, 3, 0, None, (ME, ("web-1", 4243)))
    sizing = size_pools(view, ME, Hints(overlap=0))
    assert (sizing.instances, sizing.workers) == (1, 2)


def test_pgbouncer_counts_its_own_pool_not_studios():
    hints = Hints(threads=4, pgbouncer_pool=20)
    fits = size_pools(ServerView(100, 3, 10, None, live(5, 8)), ME, hints)
    assert fits.fits and (fits.pool_size, fits.max_overflow) == (5, 5)
    assert "PgBouncer's pool of 20" in fits.reasoning[0]
    too_big = size_pools(ServerView(20, 3, 0, None), ME, hints)
    assert not too_big.fits and "PgBouncer's pool of 20 exceeds the 15" in too_big.problem


@pytest.mark.parametrize(
    ("instance", "pid"),
    [("web.1", 12), ("0f6b4c3e-1d2a-4b5c-9e8f-7a6b5c4d3e2f", 4194304), ("x" * 100, 99)],
)
def test_connection_names_fit_postgresql_and_read_back(instance, pid):
    name = application_name(instance, pid)
    assert len(name.encode()) <= MAX_APPLICATION_NAME
    named, read_pid = parse_application_name(name)
    assert read_pid == pid and instance.endswith(named)
    assert named == instance or len(name) == MAX_APPLICATION_NAME


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"STUDIO_INSTANCE_ID": "blue one", "DYNO": "web.1"}, "blue-one"),
        ({"RAILWAY_REPLICA_ID": "0f6b4c3e-1d2a", "DYNO": "web.1"}, "0f6b4c3e-1d2a"),
        ({"DYNO": "web.2"}, "web.2"),
    ],
)
def test_the_instance_is_named_by_the_platform(environ, expected):
    assert instance_id(environ) == expected


def test_other_names_are_not_studios():
    assert parse_application_name("studio") is None
    assert parse_application_name("psql") is None
    assert parse_application_name("studio/web.1/12") == ("web.1", 12)


# Against the real server.

ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@contextmanager
def held(url: str, instance: str, pids: range):
    """Hold one connection per pid, named as a studio worker of `instance` would name it."""
    with ExitStack() as stack:
        for pid in pids:
            dsn = url.replace("postgresql+psycopg2://", "postgresql://")
            connection = psycopg2.connect(dsn, application_name=application_name(instance, pid))
            stack.callback(connection.close)
        yield


@pytest.fixture
def auto_pool(monkeypatch):
    """Size pools from the server at start, as production does, with no instance variables."""
    for name in ("STUDIO_INSTANCES", "WEB_CONCURRENCY", "THREADS_PER_WORKER", "DB_BUDGET_STRICT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DB_POOL_SIZE", "auto")
    monkeypatch.setenv("STUDIO_INSTANCE_ID", "under-test")


@ON_POSTGRESQL
def test_a_live_second_instance_shrinks_the_pool(migrated_app, extra_apps, auto_pool):
    url = migrated_app.config["SQLALCHEMY_DATABASE_URI"]
    alone = extra_apps().extensions[KEY]
    assert alone.sizing is not None and alone.sizing.instances >= 1
    # Another instance whose 12 workers each hold a connection, as under load.
    with held(url, "second-instance", range(50_001, 50_013)):
        app = extra_apps()
        beside = app.extensions[KEY]
    assert ("second-instance", 50_001) in beside.view.studio
    sizing = beside.sizing
    assert sizing.instances >= 2 and sizing.workers >= 12
    assert sizing.per_process == beside.view.available // ((sizing.instances + 1) * 12)
    assert sizing.per_process < alone.sizing.per_process
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert (options["pool_size"], options["max_overflow"]) == (
        sizing.pool_size,
        sizing.max_overflow,
    )
    assert options["pool_size"] + options["max_overflow"] < (
        alone.sizing.pool_size + alone.sizing.max_overflow
    )
    with app.app_context():
        assert db.engine.pool.size() == sizing.pool_size


@ON_POSTGRESQL
def test_the_check_warns_when_a_third_instance_would_not_fit(
    migrated_app, extra_apps, monkeypatch, caplog
):
    """Two instances of 2 workers are live; this one, with no instance variables, is a third."""
    url = migrated_app.config["SQLALCHEMY_DATABASE_URI"]
    for name in ("STUDIO_INSTANCES", "WEB_CONCURRENCY", "THREADS_PER_WORKER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DB_DEPLOY_OVERLAP", "0")
    available = probe_url(url, {}).available
    # Per worker, two instances of two workers fit with room to spare; three do not.
    per_worker = available // 5
    monkeypatch.setenv("DB_POOL_SIZE", str(per_worker - 2))
    monkeypatch.setenv("DB_MAX_OVERFLOW", "2")
    with held(url, "first", range(60_001, 60_003)):
        with caplog.at_level(logging.WARNING, logger="studio"):
            extra_apps(DB_BUDGET_CHECK=True)
        assert "connection budget" not in caplog.text
        with held(url, "second", range(60_011, 60_013)):
            with caplog.at_level(logging.WARNING, logger="studio"):
                extra_apps(DB_BUDGET_CHECK=True)
    assert f"connection budget: worst case {3 * 2 * per_worker} connections exceeds" in caplog.text


@ON_POSTGRESQL
def test_connections_are_named_by_instance_and_pid(extra_apps, auto_pool):
    app = extra_apps()
    with app.app_context():
        name = db.session.execute(text("SHOW application_name")).scalar()
        db.session.remove()
    assert name == application_name("under-test", os.getpid())


@ON_POSTGRESQL
def test_explicit_numbers_win(migrated_app, extra_apps, auto_pool, monkeypatch):
    monkeypatch.setenv("DB_MAX_OVERFLOW", "3")
    options = extra_apps().config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["max_overflow"] == 3 and options["pool_size"] == 2  # one thread + spare
    monkeypatch.setenv("DB_POOL_SIZE", "4")
    monkeypatch.delenv("DB_MAX_OVERFLOW")
    app = extra_apps()
    assert KEY not in app.extensions  # nothing asked of the server
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert (options["pool_size"], options["max_overflow"]) == (4, 5)  # testing's overflow


@ON_POSTGRESQL
def test_strict_refuses_a_pool_smaller_than_the_threads(extra_apps, auto_pool, monkeypatch):
    monkeypatch.setenv("THREADS_PER_WORKER", "1000")
    monkeypatch.setenv("DB_BUDGET_STRICT", "true")
    with pytest.raises(ConfigError, match="fewer than its 1000 thread"):
        extra_apps()


def test_an_unreachable_server_leaves_a_small_fixed_pool(auto_pool, monkeypatch, caplog):
    if not os.environ.get(PG_VARIABLE):
        pytest.skip(PG_SKIP_REASON)
    monkeypatch.setenv("THREADS_PER_WORKER", "3")
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with caplog.at_level(logging.WARNING, logger="studio"):
        app = make_app(closed)
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert (options["pool_size"], options["max_overflow"]) == (4, 0)
    # The driver's own words, so that a wrong host, password or sslmode can be told apart.
    assert "the database could not be asked (OperationalError: connection to server" in caplog.text
    assert "Connection refused" in caplog.text
    assert app.test_client().get("/health").status_code == 200


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DB_POOL": "pgbouncer", "DB_TIMEOUTS_PER": "connection"}, "DB_TIMEOUTS_PER"),
        ({"DB_POOL": "bouncer"}, "DB_POOL"),
        ({"DB_POOL_SIZE": "0"}, "DB_POOL_SIZE"),
        ({"DB_POOL_SIZE": "many"}, "DB_POOL_SIZE"),
        ({"DB_DEPLOY_OVERLAP": "-1"}, "DB_DEPLOY_OVERLAP"),
    ],
)
def test_pool_settings_are_checked_by_name(monkeypatch, environ, message):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        make_app("postgresql://user@db.example.com/shop")


def test_pgbouncer_mode_sends_no_connection_options(monkeypatch):
    monkeypatch.setenv("DB_POOL", "pgbouncer")
    app = make_app("postgresql://user@db.example.com/shop")
    assert "options" not in app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]
    assert app.config["DB_TIMEOUTS_PER"] == "transaction"


@ON_POSTGRESQL
def test_the_pgbouncer_run_goes_through_pgbouncer(app):
    """With STUDIO_TEST_PGBOUNCER=1 the test apps reach the server through a PgBouncer."""
    if os.environ.get("STUDIO_TEST_PGBOUNCER") != "1":
        pytest.skip("set STUDIO_TEST_PGBOUNCER=1 to run the PostgreSQL tests through PgBouncer")
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    server_port = db.session.execute(text("SELECT inet_server_port()")).scalar()
    assert url.port != server_port and app.config["DB_POOL"] == "pgbouncer"
    # The timeouts are set per transaction (SET LOCAL), not as connection options.
    assert "options" not in app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]
    assert db.session.execute(text("SHOW statement_timeout")).scalar() == "5s"


@ON_POSTGRESQL
def test_sizing_leaves_no_connection_open(migrated_app, extra_apps, auto_pool):
    """The probe's connection is closed before the engine exists: nothing for a fork to share."""
    app = extra_apps()
    assert app.extensions[KEY].sizing is not None
    name = application_name("under-test", os.getpid())
    with migrated_app.app_context():
        left = db.session.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
            {"name": name},
        ).scalar()
        db.session.remove()
    assert left == 0
