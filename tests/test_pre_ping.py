"""The idle-only pre-ping: a connection the server dropped while it idled is replaced."""

import time

import pytest
from sqlalchemy import create_engine, text

from studio.extensions import db


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_connection_dropped_while_idle_is_replaced(migrated_app, extra_apps, monkeypatch):
    monkeypatch.setenv("DB_PRE_PING_IDLE_SECONDS", "1")
    app = extra_apps()
    assert app.config["DB_PRE_PING_IDLE_SECONDS"] == 1
    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.remove()  # back to the pool
        killer = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with killer.begin() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        killer.dispose()
        time.sleep(1.1)
        assert db.session.execute(text("SELECT pg_backend_pid()")).scalar() != pid
        db.session.remove()


def test_without_the_setting_pre_ping_stays_as_configured(extra_apps, monkeypatch):
    monkeypatch.setenv("DB_POOL_PRE_PING", "true")
    app = extra_apps(STUDIO_ENV="testing", DATABASE_URL="postgresql://u@db.example.com/x")
    assert app.config["DB_POOL_PRE_PING"] is True
    assert app.config["DB_PRE_PING_IDLE_SECONDS"] == 0
