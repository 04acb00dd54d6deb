"""Configuration: environments, database URL and engine, secrets, cookies, proxies, start-up log."""

import logging
import os
import stat

import pytest
from flask import Flask, request, session
from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from studio import create_app
from studio.config import ConfigError, DevelopmentConfig, normalize_database_url
from studio.extensions import db

from .conftest import PG_SKIP_REASON, PG_VARIABLE, make_app

PG_URL = "postgres://user:s3cret@db.example.com:5432/shop"
SECRET = "a-long-enough-production-secret"
SETTINGS_VARIABLES = {
    "STUDIO_ENV",
    "RAILWAY_ENVIRONMENT",
    "DYNO",
    "SECRET_KEY",
    "DATABASE_URL",
    "DATABASE_SSLMODE",
    "PROXY_HOPS",
    "SESSION_COOKIE_SECURE",
    "LOG_LEVEL",
    "FORCE_HTTPS",
    "HSTS",
    "ALLOWED_HOSTS",
    "IMAGE_HOSTS",
    "SERVER_TIMING",
}
# SQLAlchemy's own pre-ping is always off: studio.database pings on checkout (DB_POOL_PRE_PING).
# Production sizes the pool from the server (DB_POOL_SIZE=auto); db.example.com cannot be
# asked, so it falls back to one connection per thread and a spare, no overflow.
PRODUCTION_POOL = {
    "pool_size": 2,
    "max_overflow": 0,
    "pool_timeout": 10,
    "pool_recycle": 300,
    "pool_pre_ping": False,
}
DEVELOPMENT_POOL = {
    "pool_size": 3,
    "max_overflow": 5,
    "pool_timeout": 30,
    "pool_recycle": 3600,
    "pool_pre_ping": False,
}
CONNECT_ARGS = {
    "connect_timeout": 5,
    "application_name": "studio",
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 10000,
    "options": "-c statement_timeout=5000 -c lock_timeout=2000",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Keep the developer's shell out of these tests."""
    for name in list(os.environ):
        if name in SETTINGS_VARIABLES or name.startswith("DB_"):
            monkeypatch.delenv(name)


def build(environment: str, database_url: str = PG_URL, **overrides) -> Flask:
    """Create an app of the given environment with a secret, on a database that is never reached."""
    config = {"STUDIO_ENV": environment, "DATABASE_URL": database_url, "SECRET_KEY": SECRET}
    return create_app({**config, **overrides})


def refusal(config: dict) -> str:
    """Return the one-line message create_app stops the process with."""
    with pytest.raises(SystemExit) as stopped:
        create_app(config)
    assert isinstance(stopped.value, ConfigError)
    message = stopped.value.code
    assert isinstance(message, str)
    assert "\n" not in message
    return message


def probe_app(environment: str) -> Flask:
    """An app with a route that reports how it sees the request and starts a session."""
    app = build(environment)

    @app.get("/_probe")
    def probe():
        session["seen"] = True
        return {"scheme": request.scheme, "remote_addr": request.remote_addr}

    return app


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "development"),
        ({"STUDIO_ENV": "testing"}, "testing"),
        ({"STUDIO_ENV": " Production "}, "production"),
        ({"RAILWAY_ENVIRONMENT": "production"}, "production"),
        ({"DYNO": "web.1"}, "production"),
        ({"DYNO": "web.1", "STUDIO_ENV": "development"}, "development"),
    ],
)
def test_environment_comes_from_the_process_environment(monkeypatch, environ, expected):
    for name, value in {"DATABASE_URL": PG_URL, "SECRET_KEY": SECRET, **environ}.items():
        monkeypatch.setenv(name, value)
    assert create_app().config["STUDIO_ENV"] == expected


@pytest.mark.parametrize("from_environ", [True, False], ids=["variable", "override"])
def test_unknown_environment_is_refused(monkeypatch, from_environ):
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    if from_environ:
        monkeypatch.setenv("STUDIO_ENV", "staging")
    message = refusal({} if from_environ else {"STUDIO_ENV": "staging"})
    assert "STUDIO_ENV" in message
    assert "staging" in message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (PG_URL, "postgresql+psycopg2://user:s3cret@db.example.com:5432/shop"),
        (
            "postgresql://user:s3cret@db.example.com/shop",
            "postgresql+psycopg2://user:s3cret@db.example.com/shop",
        ),
        (f" {PG_URL}\n", "postgresql+psycopg2://user:s3cret@db.example.com:5432/shop"),
        (
            "postgres://user:p%40ss%2Fw@db.example.com/shop",
            "postgresql+psycopg2://user:p%40ss%2Fw@db.example.com/shop",
        ),
        (
            "postgresql+psycopg://user:s3cret@db.example.com/shop",
            "postgresql+psycopg://user:s3cret@db.example.com/shop",
        ),
        (
            "postgresql+psycopg2://user:s3cret@db.example.com/shop",
            "postgresql+psycopg2://user:s3cret@db.example.com/shop",
        ),
        ("sqlite:////var/data/studio.db", "sqlite:////var/data/studio.db"),
    ],
)
def test_database_url_is_pinned_to_psycopg2(raw, expected):
    assert normalize_database_url(raw) == expected


def test_database_url_variable_reaches_the_engine(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    app = create_app({"STUDIO_ENV": "testing"})
    with app.app_context():
        assert db.engine.url.drivername == "postgresql+psycopg2"
        assert db.engine.url.password == "s3cret"
        assert db.engine.url.host == "db.example.com"


@pytest.mark.parametrize(
    ("environment", "url", "environ", "expected"),
    [
        (
            "production",
            PG_URL,
            {},
            {**PRODUCTION_POOL, "connect_args": {**CONNECT_ARGS, "sslmode": "require"}},
        ),
        (
            "production",
            f"{PG_URL}?sslmode=verify-full",
            {},
            {**PRODUCTION_POOL, "connect_args": CONNECT_ARGS},
        ),
        (
            "production",
            PG_URL,
            {"DATABASE_SSLMODE": "disable"},
            {**PRODUCTION_POOL, "connect_args": {**CONNECT_ARGS, "sslmode": "disable"}},
        ),
        ("development", PG_URL, {}, {**DEVELOPMENT_POOL, "connect_args": CONNECT_ARGS}),
        (
            "production",
            PG_URL,
            {
                "DB_POOL_SIZE": "8",
                "DB_MAX_OVERFLOW": "0",
                "DB_POOL_TIMEOUT": "4",
                "DB_POOL_RECYCLE": "60",
                "DB_POOL_PRE_PING": "false",
                "DB_CONNECT_TIMEOUT": "3",
            },
            {
                "pool_size": 8,
                "max_overflow": 0,
                "pool_timeout": 4,
                "pool_recycle": 60,
                "pool_pre_ping": False,
                "connect_args": {**CONNECT_ARGS, "connect_timeout": 3, "sslmode": "require"},
            },
        ),
        (
            "development",
            PG_URL,
            {"DB_STATEMENT_TIMEOUT_MS": "900", "DB_LOCK_TIMEOUT_MS": "300"},
            {
                **DEVELOPMENT_POOL,
                "connect_args": {
                    **CONNECT_ARGS,
                    "options": "-c statement_timeout=900 -c lock_timeout=300",
                },
            },
        ),
        (
            "production",
            f"{PG_URL}?options=-c%20search_path%3Dshop",
            {"DB_TIMEOUTS_PER": "connection"},
            {
                **PRODUCTION_POOL,
                "connect_args": {
                    **CONNECT_ARGS,
                    "sslmode": "require",
                    "options": "-c search_path=shop -c statement_timeout=5000 -c lock_timeout=2000",
                },
            },
        ),
        (
            "production",
            PG_URL,
            {"DB_TIMEOUTS_PER": "transaction"},
            {
                **PRODUCTION_POOL,
                "connect_args": {
                    **{k: v for k, v in CONNECT_ARGS.items() if k != "options"},
                    "sslmode": "require",
                },
            },
        ),
    ],
    ids=[
        "production",
        "production-sslmode-in-url",
        "production-sslmode-variable",
        "development",
        "production-overridden",
        "development-timeouts",
        "production-options-in-url",
        "production-timeouts-per-transaction",
    ],
)
def test_postgres_engine_options(monkeypatch, environment, url, environ, expected):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    options = dict(build(environment, url).config["SQLALCHEMY_ENGINE_OPTIONS"])
    assert "poolclass" not in options  # SQLAlchemy's QueuePool, measured by its events
    assert options == expected


def test_engine_is_built_with_the_pool_settings():
    app = build("production")
    with app.app_context():
        pool = db.engine.pool
        assert type(pool) is QueuePool
        assert pool.size() == 2
        assert pool._max_overflow == 0
        assert pool.timeout() == 10
        assert pool._recycle == 300
    assert app.config["DB_POOL_PRE_PING"] is True
    # Only connections idle this long are pinged (tests/test_pre_ping.py shows the rest retried).
    assert app.config["DB_PRE_PING_IDLE_SECONDS"] == 10


@pytest.mark.parametrize(
    ("environment", "environ", "expected"),
    [
        ("production", {}, True),
        ("development", {}, False),
        ("development", {"DB_POOL_PRE_PING": "yes"}, True),
        ("production", {"DB_POOL_PRE_PING": "false"}, False),
    ],
)
def test_checkouts_are_pinged_as_configured(monkeypatch, environment, environ, expected):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert build(environment).config["DB_POOL_PRE_PING"] is expected


def test_postgres_connection_carries_the_connect_args(monkeypatch):
    server_url = os.environ.get(PG_VARIABLE)
    if not server_url:
        pytest.skip(PG_SKIP_REASON)
    # Whatever SSL the test server offers; production's "require" is covered above.
    monkeypatch.setenv("DATABASE_SSLMODE", "prefer")
    app = build("production", server_url)
    with app.app_context():
        try:
            with db.engine.connect() as connection:
                name = connection.execute(text("SHOW application_name")).scalar()
        finally:
            db.engine.dispose()
    assert name == f"studio/{app.config['STUDIO_INSTANCE_ID']}/{os.getpid()}"


@pytest.mark.parametrize("scope", ["connection", "transaction"])
def test_statement_and_lock_timeouts_reach_the_server(monkeypatch, scope):
    server_url = os.environ.get(PG_VARIABLE)
    if not server_url:
        pytest.skip(PG_SKIP_REASON)
    monkeypatch.setenv("DATABASE_SSLMODE", "prefer")
    monkeypatch.setenv("DB_TIMEOUTS_PER", scope)
    app = build("production", server_url)
    with app.app_context():
        try:
            with db.engine.connect() as connection:
                in_force = [connection.execute(text(f"SHOW {name}")).scalar() for name in LIMITS]
                connection.rollback()
                # Outside a transaction (autocommit): what the session itself carries.
                raw = connection.connection.dbapi_connection
                raw.autocommit = True
                with raw.cursor() as cursor:
                    cursor.execute("SHOW statement_timeout")
                    session_default = cursor.fetchone()[0]
                raw.autocommit = False
        finally:
            db.engine.dispose()
    assert in_force == ["5s", "2s"]
    assert session_default == ("5s" if scope == "connection" else "0")


LIMITS = ("statement_timeout", "lock_timeout")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DB_POOL_SIZE", "five"),
        ("DB_MAX_OVERFLOW", "2.5"),
        ("DB_CONNECT_TIMEOUT", "10s"),
        ("DB_POOL_PRE_PING", "maybe"),
        ("DB_TIMEOUTS_PER", "request"),
        ("DB_RETRY_SECONDS", "soon"),
        ("REQUEST_DEADLINE_SECONDS", "20s"),
        # Numbers that would break the breaker, the retries or every connection later on.
        ("REQUEST_DEADLINE_SECONDS", "nan"),
        ("DB_BREAKER_OPEN_SECONDS", "inf"),
        ("DB_BREAKER_OPEN_SECONDS", "0"),
        ("DB_RETRY_WAIT_SECONDS", "-1"),
        ("DB_RETRY_ATTEMPTS", "0"),
        ("DB_BREAKER_FAILURES", "-3"),
        ("DB_STATEMENT_TIMEOUT_MS", "-1"),
        ("DB_LOCK_TIMEOUT_MS", "-1"),
        ("DB_CONNECT_TIMEOUT", "0"),
        ("CACHE_EPOCH_POLL_SECONDS", "-1"),
        # A lease no longer than the poll would leave the cache unused between two polls.
        ("CACHE_EPOCH_LEASE_SECONDS", "0.5"),
        ("CACHE_REDIS_TIMEOUT", "0"),
        ("PROXY_HOPS", "one"),
        # Below 0, ProxyFix takes a forwarded address the client wrote.
        ("PROXY_HOPS", "-1"),
        ("CURRENCY", "euro dollars"),
        # ASVS 6.2.1: never fewer than 8 characters; limits the limiter could not read.
        ("PASSWORD_MIN_LENGTH", "6"),
        ("LOGIN_LIMIT_PER_IP", "lots"),
        ("LOGIN_LIMIT_PER_USERNAME_AND_IP", "5 per fortnight"),
    ],
)
def test_malformed_setting_is_refused_by_name(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    message = refusal({"STUDIO_ENV": "production", "DATABASE_URL": PG_URL, "SECRET_KEY": SECRET})
    assert variable in message
    assert repr(value) in message


@pytest.mark.parametrize("environment", ["production", "development", "testing"])
def test_sqlite_engine_has_no_pool_sizing(tmp_path, environment):
    options = build(environment, f"sqlite:///{tmp_path / 'studio.db'}").config[
        "SQLALCHEMY_ENGINE_OPTIONS"
    ]
    assert not options.keys() & {"pool_size", "max_overflow", "pool_timeout"}
    assert options["connect_args"]["timeout"] > 0


@pytest.mark.parametrize(("pragma", "expected"), [("foreign_keys", 1), ("journal_mode", "wal")])
def test_sqlite_connection_pragmas(tmp_path, pragma, expected):
    app = make_app(f"sqlite:///{tmp_path / 'studio.db'}")
    with app.app_context():
        try:
            with db.engine.connect() as connection:
                value = connection.exec_driver_sql(f"PRAGMA {pragma}").scalar()
        finally:
            db.engine.dispose()
    assert value == expected


@pytest.mark.parametrize("secret", [None, "  ", "fifteen-chars!!"], ids=["unset", "blank", "short"])
def test_production_refuses_to_start_without_a_secret_key(monkeypatch, secret):
    if secret is not None:
        monkeypatch.setenv("SECRET_KEY", secret)
    message = refusal({"STUDIO_ENV": "production", "DATABASE_URL": PG_URL})
    assert "SECRET_KEY" in message


@pytest.mark.parametrize("database_url", [None, "  "], ids=["unset", "blank"])
def test_production_refuses_to_start_without_a_database_url(monkeypatch, database_url):
    monkeypatch.setenv("SECRET_KEY", SECRET)
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    message = refusal({"STUDIO_ENV": "production"})
    assert "DATABASE_URL" in message


def test_development_keeps_its_generated_secret_key(tmp_path):
    instance = tmp_path / "instance"
    first = DevelopmentConfig({}, str(instance)).settings()["SECRET_KEY"]
    key_file = instance / "secret_key"
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert DevelopmentConfig({}, str(instance)).settings()["SECRET_KEY"] == first
    # Not a fixed fallback: another checkout gets a key of its own.
    assert DevelopmentConfig({}, str(tmp_path / "other")).settings()["SECRET_KEY"] != first


@pytest.mark.parametrize(
    ("environment", "secure", "name"),
    [("production", True, "__Host-session"), ("development", False, "session")],
)
def test_session_cookie_flags(environment, secure, name):
    app = probe_app(environment)
    cookie = app.test_client().get("/_probe").headers["Set-Cookie"]
    attributes = [part.strip() for part in cookie.split(";")]
    assert attributes[0].startswith(f"{name}=")
    assert "HttpOnly" in attributes
    assert "SameSite=Lax" in attributes
    assert ("Secure" in attributes) is secure
    # What a browser demands of a __Host- cookie: Secure, Path=/ and no Domain.
    assert "Path=/" in attributes
    assert not any(part.lower().startswith("domain=") for part in attributes)
    assert app.config["REMEMBER_COOKIE_NAME"] == name.replace("session", "remember_token")


def test_a_session_cookie_without_secure_keeps_its_plain_name(monkeypatch):
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "false")
    cookie = probe_app("production").test_client().get("/_probe").headers["Set-Cookie"]
    assert cookie.startswith("session=")  # a browser would drop a __Host- cookie without Secure


@pytest.mark.parametrize(
    ("environment", "variables", "sent"),
    [
        ("production", {}, True),
        ("production", {"HSTS": "false"}, False),
        ("development", {}, False),
        ("development", {"FORCE_HTTPS": "true", "ALLOWED_HOSTS": "localhost"}, True),
    ],
)
def test_hsts_is_on_by_default_in_production(monkeypatch, environment, variables, sent):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    response = probe_app(environment).test_client().get("/_probe", base_url="https://localhost")
    assert response.headers.get("Strict-Transport-Security") == (
        "max-age=31536000" if sent else None
    )


def test_host_lists_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", " Shop.Example.com, .studio.example ,")
    monkeypatch.setenv("IMAGE_HOSTS", "images.example.com, *.cdn.example, http://old.example:8080")
    config = build("production").config
    assert config["ALLOWED_HOSTS"] == ("shop.example.com", ".studio.example")
    assert config["IMAGE_HOSTS"] == (
        "https://images.example.com",
        "https://*.cdn.example",
        "http://old.example:8080",
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ALLOWED_HOSTS", "shop.example/admin"),
        ("ALLOWED_HOSTS", "*"),
        ("IMAGE_HOSTS", "images.example.com; script-src *"),
        ("IMAGE_HOSTS", "https:"),
        ("IMAGE_HOSTS", "'unsafe-inline'"),
        ("SERVER_TIMING", "sometimes"),
    ],
)
def test_malformed_host_lists_are_refused_by_name(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    message = refusal({"STUDIO_ENV": "production", "DATABASE_URL": PG_URL, "SECRET_KEY": SECRET})
    assert variable in message


@pytest.mark.parametrize(
    ("environment", "hops", "headers", "scheme", "remote_addr"),
    [
        (
            "production",
            None,
            {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
            "https",
            "203.0.113.9",
        ),
        # A client can prepend its own X-Forwarded-For; only the router's entry is trusted.
        (
            "production",
            None,
            {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7, 203.0.113.9"},
            "https",
            "203.0.113.9",
        ),
        (
            "production",
            "2",
            {"X-Forwarded-Proto": "https, http", "X-Forwarded-For": "198.51.100.7, 203.0.113.9"},
            "https",
            "198.51.100.7",
        ),
        (
            "development",
            None,
            {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
            "http",
            "127.0.0.1",
        ),
    ],
    ids=["production", "production-spoofed", "two-hops", "development"],
)
def test_forwarded_headers_are_trusted_per_proxy_hop(
    monkeypatch, environment, hops, headers, scheme, remote_addr
):
    if hops is not None:
        monkeypatch.setenv("PROXY_HOPS", hops)
    seen = probe_app(environment).test_client().get("/_probe", headers=headers).get_json()
    assert seen == {"scheme": scheme, "remote_addr": remote_addr}


@pytest.mark.parametrize("environment", ["production", "development"])
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (PG_URL, "postgresql+psycopg2://user:***@db.example.com:5432/shop"),
        (
            "postgres://user@db.example.com:5432/shop?password=s3cret&sslmode=require",
            "postgresql+psycopg2://user@db.example.com:5432/shop?password=***&sslmode=require",
        ),
    ],
    ids=["in-url", "query"],
)
def test_startup_log_masks_the_password(caplog, environment, url, shown):
    with caplog.at_level(logging.INFO, logger="studio"):
        build(environment, url)
    lines = [record.getMessage() for record in caplog.records]
    [line] = [line for line in lines if line.startswith("studio starting")]
    assert environment in line
    assert shown in line
    assert "pool_size" in line
    assert "s3cret" not in caplog.text
    assert SECRET not in caplog.text


def test_startup_warns_when_production_answers_to_any_host(caplog, monkeypatch):
    with caplog.at_level(logging.INFO, logger="studio"):
        build("production")
    assert "ALLOWED_HOSTS is not set" in caplog.text
    caplog.clear()
    monkeypatch.setenv("ALLOWED_HOSTS", "shop.example.com")
    with caplog.at_level(logging.INFO, logger="studio"):
        build("production")
    assert "ALLOWED_HOSTS" not in caplog.text


def test_unparseable_database_url_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("DATABASE_URL", "not a url")
    assert "DATABASE_URL" in refusal({"STUDIO_ENV": "production"})


def test_environment_override_is_read_like_the_variable():
    assert build(" Production ").config["STUDIO_ENV"] == "production"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"DYNO": "web.1"}, "rediss://:pw@ec2.example:6380/0?ssl_cert_reqs=none"),
        ({"DYNO": "web.1", "REDIS_TLS_VERIFY": "true"}, "rediss://:pw@ec2.example:6380/0"),
        ({}, "rediss://:pw@ec2.example:6380/0"),
        ({"REDIS_TLS_VERIFY": "false"}, "rediss://:pw@ec2.example:6380/0?ssl_cert_reqs=none"),
    ],
)
def test_heroku_redis_self_signed_certificate_is_accepted_there(monkeypatch, environ, expected):
    # Heroku's Redis is TLS with a self-signed certificate, which redis-py refuses by default.
    monkeypatch.setenv("REDIS_URL", "rediss://:pw@ec2.example:6380/0")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    config = build("development").config
    assert config["REDIS_URL"] == expected
    assert config["CACHE_REDIS_URL"] == expected
    assert config["RATELIMIT_STORAGE_URI"] == expected


def test_a_database_url_of_an_unknown_kind_is_refused_by_name():
    """A misspelt scheme failed later, in every command, with SQLAlchemy's traceback."""
    message = refusal(
        {"STUDIO_ENV": "production", "DATABASE_URL": "potsgres://u@h/db", "SECRET_KEY": SECRET}
    )
    assert "DATABASE_URL must be PostgreSQL" in message and "'potsgres'" in message
