"""Engine set-up that depends on the database: SQLite pragmas and transactions."""

import time
from typing import Any

from flask import Flask
from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError
from werkzeug.routing import IntegerConverter

from .extensions import db
from .services.validation import MAX_INT


class IdConverter(IntegerConverter):
    """A database id in a URL: 1 to 2**31-1, so no id overflows a query."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, min=1, max=MAX_INT)


def register_engine_events(app: Flask) -> None:
    """Attach the per-connection settings the app's database needs."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        configure_sqlite(engine)
    idle = app.config.get("DB_PRE_PING_IDLE_SECONDS", 0)
    if idle > 0:
        ping_when_idle(engine, idle)


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Test a pooled connection before use only if it sat idle for `idle_seconds`.

    pool_pre_ping costs a round trip on every checkout; a connection handed back a
    moment ago is as good as proven. Servers and routers drop connections that idled,
    and those are the ones this still checks.
    """

    @event.listens_for(engine, "checkin")
    def note_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned = record.info.get("checked_in_at")
        if returned is None or time.monotonic() - returned < idle_seconds:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()
        except Exception as exc:
            # The pool throws this connection away and checks out a fresh one.
            raise DisconnectionError(str(exc)) from exc


def configure_sqlite(engine: Engine) -> None:
    """Turn on foreign keys and WAL, and let SQLAlchemy own transactions.

    The sqlite3 module begins transactions lazily and not at all for DDL, which
    breaks savepoints and isolation; SQLAlchemy's documented recipe emits BEGIN itself.
    It is BEGIN IMMEDIATE: a transaction that read first and writes later would
    otherwise fail at once with "database is locked" when another connection wrote
    in between, while IMMEDIATE makes it wait (up to the busy timeout) for its turn.
    """

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
