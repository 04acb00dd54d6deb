"""Engine set-up that depends on the database: SQLite pragmas and transactions."""

from typing import Any

from flask import Flask
from sqlalchemy import Engine, event
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
