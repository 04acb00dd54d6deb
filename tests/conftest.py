"""Fixtures: an app per database, each test inside a transaction that is rolled back."""

import contextvars
import os
import re
import socket
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache as once
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.security import generate_password_hash

from studio import create_app
from studio.auth import sessions
from studio.config import normalize_database_url
from studio.extensions import cache, db, limiter
from studio.logs import burst_log
from studio.models import Paint, PaintOrderChange, PaintTotals, User, VocabularyTerm
from studio.observability import observatory
from studio.redis_backend import counters
from studio.services import accounts, paints
from studio.services.cached_reads import EPOCHS_KEY

PG_VARIABLE = "STUDIO_TEST_DATABASE_URL"
# Tables whose rows come from the migrations; tests that commit leave them as they found them.
MIGRATED_ROWS = (VocabularyTerm.__table__, PaintOrderChange.__table__)
REDIS_VARIABLE = "STUDIO_TEST_REDIS_URL"
PG_SKIP_REASON = (
    f"set {PG_VARIABLE} (e.g. postgresql://postgres@127.0.0.1:5432/test) to run on PostgreSQL"
)
# Set to 1: the PostgreSQL apps connect through a PgBouncer (transaction mode) of the session's.
PGBOUNCER_VARIABLE = "STUDIO_TEST_PGBOUNCER"
BOUNCERS: list[Any] = []


@contextmanager
def temporary_postgres_database(server_url: str) -> Iterator[str]:
    """Create an empty database next to the one named in `server_url`; drop it afterwards."""
    url = make_url(normalize_database_url(server_url))
    name = f"studio_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def empty_database(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yield the URL of a new, empty database of the given kind."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'studio.db'}"
        return
    server_url = os.environ.get(PG_VARIABLE)
    if not server_url:
        pytest.skip(PG_SKIP_REASON)
    with temporary_postgres_database(server_url) as url:
        yield through_pgbouncer(url)


@pytest.fixture(autouse=True)
def no_earlier_bursts() -> None:
    """Start each test with no bursts of log lines behind it.

    A cause logged more than a few times a minute is summed up instead of shown (logs.py);
    the test processes run the files in any order, so a test looking for a line must not
    depend on which tests logged it before, in the same process.
    """
    burst_log.clear()


@pytest.fixture(autouse=True)
def stop_epoch_watchers() -> Iterator[None]:
    """After each test, stop the cache-epoch threads of the apps made with Redis so far.

    An app outlives its test until it is collected, and its thread goes on checking a
    connection out of its pool every poll period (from a database dropped since, too): a
    later test counting the process's pool checkouts would count those. An app still in
    use (a session's) starts its thread again on its next read of the cache.
    """
    yield
    for app in list(MADE_APPS):
        epochs = app.extensions.get(EPOCHS_KEY)
        if epochs is not None:
            epochs.watching = False


@pytest.fixture(scope="session", autouse=True)
def session_pgbouncer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """With STUDIO_TEST_PGBOUNCER=1, start a PgBouncer in front of the test server."""
    server_url = os.environ.get(PG_VARIABLE)
    if os.environ.get(PGBOUNCER_VARIABLE) != "1" or not server_url:
        yield
        return
    from .faults.servers import OwnPgBouncer  # it imports this module

    url = make_url(normalize_database_url(server_url))
    if url.host not in ("127.0.0.1", "localhost") or url.username != "postgres":
        pytest.fail(f"{PGBOUNCER_VARIABLE} needs {PG_VARIABLE} at postgres@127.0.0.1")
    bouncer = OwnPgBouncer(tmp_path_factory.mktemp("pgbouncer"), url)
    bouncer.start()
    BOUNCERS.append(bouncer)
    try:
        yield
    finally:
        BOUNCERS.clear()
        bouncer.close()


def through_pgbouncer(url: str) -> str:
    """Return the URL of the same database through the session's PgBouncer, if there is one."""
    if not BOUNCERS:
        return url
    return BOUNCERS[0].url(make_url(url).database)


class RequestClient(FlaskClient):
    """Serve every request in an app context of its own, as a real server does.

    The test itself holds an app context; Flask would reuse it for the request,
    sharing `g` and the database session between requests of one test.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        # Buffered, so a streamed body is produced inside the request's own context.
        kwargs.setdefault("buffered", True)
        return contextvars.Context().run(super().open, *args, **kwargs)


# The apps tests made, until they are collected (see stop_epoch_watchers).
MADE_APPS: "weakref.WeakSet[Flask]" = weakref.WeakSet()


def make_app(database_url: str, **overrides: Any) -> Flask:
    if BOUNCERS and make_url(database_url).port == BOUNCERS[0].port:
        overrides.setdefault("DB_POOL", "pgbouncer")  # no connection options, SET LOCAL
    app = create_app(
        {"STUDIO_ENV": "testing", "DATABASE_URL": database_url, "TESTING": True, **overrides}
    )
    app.test_client_class = RequestClient
    MADE_APPS.add(app)
    return app


# For tests of what only PostgreSQL does (planner estimates, background jobs): the
# SQLite case is not made at all, rather than made and skipped.
ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def migrated_app(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app whose database got its schema from the migrations, once per session."""
    with empty_database(backend, tmp_path_factory) as url:
        app = make_app(url)
        with app.app_context():
            upgrade()
            # A session bound to the test's connection commits into savepoints.
            db.session.session_factory.configure(join_transaction_mode="create_savepoint")
        yield app
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    """An app on a brand-new, empty database."""
    with empty_database(request.param, tmp_path_factory) as url:
        app = make_app(url)
        with app.app_context():
            try:
                yield app
            finally:
                db.session.remove()
                db.engine.dispose()


@pytest.fixture
def app(migrated_app: Flask) -> Iterator[Flask]:
    """The app, with everything the test writes rolled back afterwards."""
    with migrated_app.app_context():
        limiter.reset()
        cache.clear()
        counters.reset()
        engines = db.engines
        engine = engines[None]
        connection = engine.connect()
        transaction = connection.begin()
        engines[None] = connection
        try:
            yield migrated_app
        finally:
            db.session.remove()
            transaction.rollback()
            connection.close()
            engines[None] = engine


@pytest.fixture
def committed_app(migrated_app: Flask) -> Iterator[Flask]:
    """The app on its real engine, for tests that need several connections; emptied afterwards.

    Rows the migrations put in (the types and families lists) are put back as they were.
    """
    with migrated_app.app_context():
        cache.clear()
        with db.engine.connect() as connection:
            migrated = {
                table: [dict(row) for row in connection.execute(table.select()).mappings()]
                for table in MIGRATED_ROWS
            }
        try:
            yield migrated_app
        finally:
            db.session.remove()
            cache.clear()
            with db.engine.begin() as connection:
                # The paints' triggers keep paint_totals: emptied after the paints, at zero.
                for table in reversed(db.metadata.sorted_tables):
                    if table is not PaintTotals.__table__:
                        connection.execute(table.delete())
                connection.execute(PaintTotals.__table__.delete())
                for table, rows in migrated.items():
                    if rows:
                        connection.execute(table.insert(), rows)


@pytest.fixture
def extra_apps(migrated_app: Flask):
    """Make more app instances (other workers) on the test database; clean up after them.

    Flask-Limiter keeps one storage per Limiter, so the last app created decides where
    the shared limiter counts; a plain app made afterwards hands it back to memory.
    """
    made: list[Flask] = []
    url = migrated_app.config["SQLALCHEMY_DATABASE_URI"]

    def factory(**settings: Any) -> Flask:
        made.append(make_app(url, **settings))
        return made[-1]

    yield factory
    for extra in made:
        observatory(extra).sampler.stop()  # its thread would go on publishing gauges
        with extra.app_context():
            db.engine.dispose()
    with make_app(url).app_context():
        db.engine.dispose()


@pytest.fixture
def redis_url() -> str:
    """The test Redis, from STUDIO_TEST_REDIS_URL; unreachable fails, unset skips."""
    url = os.environ.get(REDIS_VARIABLE)
    if not url:
        pytest.skip(f"set {REDIS_VARIABLE} (e.g. redis://127.0.0.1:6379/0) to run against Redis")
    Redis.from_url(url, socket_connect_timeout=2).ping()
    return url


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


class ApiClient:
    """The test client with an API token on every request."""

    def __init__(self, client: Any, token: str, user: Any) -> None:
        self.client, self.token, self.user = client, token, user
        self.headers = {"Authorization": f"Bearer {token}"}

    def __getattr__(self, method: str) -> Any:
        call = getattr(self.client, method)
        return lambda path, **kwargs: call(
            path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs
        )


PASSWORD = "correct horse battery"


@once
def password_hash() -> str:
    # scrypt is slow by design; hash the shared test password once per run.
    return generate_password_hash(PASSWORD, method="scrypt")


def make_api(flask_app: Flask, username: str = "alice") -> ApiClient:
    user = User(username=username, password_hash=password_hash())
    db.session.add(user)
    db.session.commit()
    _, secret = accounts.create_token(username, "tests")
    return ApiClient(flask_app.test_client(), secret, user)


@pytest.fixture
def api(app: Flask) -> ApiClient:
    return make_api(app)


@pytest.fixture
def make_paint(app: Flask):
    """Create a paint through the service, with sensible defaults."""
    counter = iter(range(1, 1_000_000))

    def factory(**fields: Any):
        number = next(counter)
        values = {"name": f"Paint {number}", "brand": "Citadel", "price": "4.50", **fields}
        values.setdefault("color_code", f"T-{number:04d}")
        return paints.create_paint(values, actor=None)

    return factory


def token_from(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', page).group(1)


def stored(paint_id):
    """Return the paint as the database has it now, not as this session last saw it."""
    db.session.expire_all()
    return db.session.get(Paint, paint_id)


class Admin:
    """A signed-in browser session."""

    def __init__(self, client):
        self.client = client

    def get(self, path, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path, data=None, form_page=None, **kwargs):
        """POST a form the way a browser does: with the CSRF token from the form's page."""
        page = self.client.get(form_page or path).get_data(as_text=True)
        return self.client.post(
            path, data={"csrf_token": token_from(page), **(data or {})}, **kwargs
        )


@pytest.fixture
def admin(app):
    api = make_api(app, "admin")
    client = app.test_client()
    sign_in_as(client, api.user.id)
    return Admin(client)


def sign_in_as(client, user_id: int, generation: int = 1) -> None:
    """Make the client's session a signed-in one of the user, as /login does (without scrypt)."""
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
        sessions.start(session, accounts.SignedInUser(user_id, "", session_generation=generation))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
