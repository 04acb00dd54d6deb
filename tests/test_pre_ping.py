"""The idle-only pre-ping: a connection the server dropped while it idled is replaced."""

import time

import pytest
from sqlalchemy import create_engine, text

from studio import signals
from studio.extensions import db
from studio.resilience.retry import retry_transient


def terminate(app, pid: int) -> None:
    killer = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with killer.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_connection_dropped_while_idle_is_replaced(migrated_app, extra_apps, monkeypatch):
    monkeypatch.setenv("DB_PRE_PING_IDLE_SECONDS", "1")
    app = extra_apps()
    assert app.config["DB_PRE_PING_IDLE_SECONDS"] == 1
    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.remove()  # back to the pool
        terminate(app, pid)
        time.sleep(1.1)
        assert db.session.execute(text("SELECT pg_backend_pid()")).scalar() != pid
        db.session.remove()


def test_without_the_setting_pre_ping_stays_as_configured(extra_apps, monkeypatch):
    monkeypatch.setenv("DB_POOL_PRE_PING", "true")
    app = extra_apps(STUDIO_ENV="testing", DATABASE_URL="postgresql://u@db.example.com/x")
    assert app.config["DB_POOL_PRE_PING"] is True
    assert app.config["DB_PRE_PING_IDLE_SECONDS"] == 0


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_connection_dropped_since_its_last_use_fails_once_and_the_work_is_retried(
    migrated_app, extra_apps, monkeypatch
):
    # Production's default: a connection used moments ago is not pinged (no round trip per
    # request); if it broke meanwhile, its first statement fails and the unit of work runs
    # again on a fresh connection, so the caller sees the answer, not the disconnect.
    monkeypatch.setenv("DB_POOL_PRE_PING", "true")
    monkeypatch.setenv("DB_PRE_PING_IDLE_SECONDS", "10")
    app = extra_apps()
    retries = []

    def count(sender, **details):
        retries.append(details["cause"])

    @retry_transient
    def backend_pid() -> int:
        return db.session.execute(text("SELECT pg_backend_pid()")).scalar()

    with app.test_request_context(), signals.database_retry.connected_to(count):
        first = backend_pid()
        db.session.remove()  # back to the pool, used a moment ago
        terminate(app, first)
        second = backend_pid()
        db.session.remove()
    assert second != first
    assert len(retries) == 1, retries
