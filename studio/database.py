"""Engine set-up: SQLite pragmas and transactions; PostgreSQL's breaker, pings and time limits."""

import logging
import os
import time
import weakref
from typing import Any

from flask import Flask, has_request_context, request
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from .connection_budget import application_name
from .extensions import AUTOCOMMIT, READS_ONLY, db
from .logs import burst_log
from .resilience import BREAKER_KEY
from .resilience.breaker import CLOSED, CircuitBreaker
from .resilience.deadline import watchdog
from .resilience.faults import READ_ONLY, BreakerOpen, sqlstate
from .search import register_sqlite_functions
from .services.validation import MAX_INT

logger = logging.getLogger(__name__)


class IdConverter(IntegerConverter):
    """A database id in a URL: 1 to 2**31-1, so no id overflows a query.

    Any other number names nothing: 404 whatever the method. (Refusing it as no match
    made werkzeug answer 405 to PATCH and DELETE, having seen GET's rule match first.)
    """

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, min=1, max=MAX_INT)

    def to_python(self, value: str) -> int:
        # Checked as text first: int() refuses more than 4,300 digits with a ValueError.
        if len(value.lstrip("0")) > len(str(MAX_INT)) or not 1 <= int(value) <= MAX_INT:
            raise NotFound(f"Nothing has the id {value[:20]}: ids run from 1 to {MAX_INT}.")
        return int(value)


def register_request_deadline(app: Flask) -> None:
    """Give each request REQUEST_DEADLINE_SECONDS for its database work, session end included.

    The session is ended here, before Flask-SQLAlchemy would: closing it rolls back, and
    if the server went away after the answer was made, that rollback fails; raised from a
    teardown it would turn a good answer into a 500, so the connection is thrown away.
    """
    seconds = app.config["REQUEST_DEADLINE_SECONDS"]

    @app.before_request
    def start_deadline() -> None:
        watchdog.begin(seconds)

    # An app-context teardown, registered after Flask-SQLAlchemy's, so it runs before it.
    @app.teardown_appcontext
    def end_session(exc: BaseException | None) -> None:
        try:
            db.session.remove()
        except SQLAlchemyError as failure:
            logger.debug("closing a session on a dead connection: %s", failure)
            db.session().invalidate()
            db.session.remove()
        finally:
            watchdog.end()


def register_engine_events(app: Flask) -> None:
    """Attach the per-connection settings and guards the app's database needs."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        configure_sqlite(engine)
        return
    config = app.config
    breaker = CircuitBreaker(
        "database",
        config["DB_BREAKER_FAILURES"],
        config["DB_BREAKER_OPEN_SECONDS"],
        meanwhile="answering 503",
        # A probe is a connection attempt, which may take up to connect_timeout.
        probe_seconds=config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]["connect_timeout"] + 1,
    )
    app.extensions[BREAKER_KEY] = breaker
    connect_through(engine, breaker, config["STUDIO_INSTANCE_ID"])
    ping = config["DB_POOL_PRE_PING"] or config["DB_PRE_PING_IDLE_SECONDS"] > 0
    guard_checkouts(
        engine,
        breaker,
        ping_idle_seconds=config["DB_PRE_PING_IDLE_SECONDS"] if ping else None,
        ping_timeout=config["DB_PING_TIMEOUT_SECONDS"],
    )
    count_read_only_as_disconnect(engine)
    if config["DB_TIMEOUTS_PER"] == "transaction":
        limit_each_transaction(
            engine, config["DB_STATEMENT_TIMEOUT_MS"], config["DB_LOCK_TIMEOUT_MS"]
        )
    elif config["DB_AUTOCOMMIT_READS"]:
        # Not with per-transaction timeouts: SET LOCAL outside a transaction does nothing.
        autocommit_reads(engine)
    forget_connections_after_fork(engine)


def connect_through(engine: Engine, breaker: CircuitBreaker, instance: str) -> None:
    """Count every new connection's success or failure in the breaker; refuse while it is open.

    Each connection is named studio/<instance>/<pid> here, at connect time, so a worker
    forked from a --preload master names its own pid; the connection budget counts live
    instances and workers by these names.
    """

    @event.listens_for(engine, "do_connect")
    def connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        cparams["application_name"] = application_name(instance, os.getpid())
        if not breaker.allows():
            raise BreakerOpen(
                "The database is not answering; not trying again yet.",
                retry_after=breaker.seconds_until_probe(),
                outage_seconds=breaker.outage_seconds(),
            )
        try:
            connection = dialect.connect(*cargs, **cparams)
        except Exception as exc:
            breaker.failed(type(exc).__name__)
            if "unsupported startup parameter: options" in str(exc):
                burst_log.note(
                    logger,
                    "refused-options",
                    "the server refuses connection options (PgBouncer does): "
                    "set DB_POOL=pgbouncer (or DB_TIMEOUTS_PER=transaction)",
                    level=logging.ERROR,
                )
            raise
        breaker.succeeded()
        return connection


def guard_checkouts(
    engine: Engine, breaker: CircuitBreaker, ping_idle_seconds: float | None, ping_timeout: float
) -> None:
    """On checkout: watch the connection for the request's deadline, and ping it if due.

    The ping replaces SQLAlchemy's pool_pre_ping so that it runs under the watchdog: a
    ping to a frozen server is cut after `ping_timeout` s. With `ping_idle_seconds` > 0
    only connections idle that long are pinged (one handed back a moment ago is as good
    as proven); None: no ping, unless the breaker is not closed, when a pooled connection
    is pinged anyway and its answer closes the breaker.
    """
    dialect = engine.dialect

    def stopped_answering() -> None:
        # A connection cut for not answering in time: the server is frozen or cut off.
        breaker.trip("a connection stopped answering")

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned = record.info.get("checked_in_at")
        doubtful = breaker.state != CLOSED
        due = ping_idle_seconds is not None and (
            time.monotonic() - (returned or 0.0) >= ping_idle_seconds
        )
        if returned is None or not (doubtful or due):  # fresh from connect(): proven
            watchdog.attach(dbapi_connection, on_cut=stopped_answering)
            return
        watchdog.attach(dbapi_connection, within=ping_timeout, on_cut=stopped_answering)
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            watchdog.detach(dbapi_connection)
            # The pool throws this connection away and opens a fresh one, through the
            # breaker: a stale connection after a restart is not an outage by itself.
            raise DisconnectionError(str(exc)) from exc
        breaker.succeeded()
        watchdog.attach(dbapi_connection, on_cut=stopped_answering)

    @event.listens_for(engine, "checkin")
    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        watchdog.detach(dbapi_connection)
        record.info["checked_in_at"] = time.monotonic()


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def autocommit_reads(engine: Engine) -> None:
    """Run a GET's statements without a transaction: two round trips fewer per request.

    psycopg2 sends BEGIN before a transaction's first statement and the pool sends
    ROLLBACK when the connection comes back; a request that only reads needs neither
    (under READ COMMITTED each statement sees its own snapshot either way). A connection
    checked out for a GET, HEAD or OPTIONS request is put in autocommit mode until it is
    returned; a commit on it is refused (studio.services.transactions), so a write
    reached by a GET fails loudly instead of committing statement by statement.
    """

    @event.listens_for(engine, "checkout")
    def reads_in_autocommit(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if has_request_context() and request.method in SAFE_METHODS:
            dbapi_connection.autocommit = True
            record.info[AUTOCOMMIT] = True

    # After the pool's reset on return, which in autocommit sends nothing.
    @event.listens_for(engine, "checkin")
    def back_to_transactions(dbapi_connection: Any, record: Any) -> None:
        if record.info.pop(AUTOCOMMIT, False) and dbapi_connection is not None:
            try:
                dbapi_connection.autocommit = False
            except Exception:  # closed: the pool will not hand it out again
                record.invalidate()


def count_read_only_as_disconnect(engine: Engine) -> None:
    """Throw away a connection that finds its server read-only (a primary that stepped down).

    Its retry must reach the new primary, through a new connection, not this one.
    """

    @event.listens_for(engine, "handle_error")
    def on_error(context: Any) -> None:
        if sqlstate(context.original_exception) == READ_ONLY:
            context.is_disconnect = True


def limit_each_transaction(engine: Engine, statement_ms: int, lock_ms: int) -> None:
    """Set the statement and lock timeouts at the start of every transaction.

    For PgBouncer in transaction mode, which hands each transaction to any server
    connection and does not pass connection options on: SET LOCAL ends with the
    transaction, so nothing leaks to another client. It costs one round trip each.
    """
    settings = (
        f"SET LOCAL statement_timeout = {int(statement_ms)}; "
        f"SET LOCAL lock_timeout = {int(lock_ms)}"
    )

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql(settings)


def forget_connections_after_fork(engine: Engine) -> None:
    """Let a forked child open its own connections instead of sharing its parent's sockets.

    SQLAlchemy's advice for os.fork(): dispose the pool in the child without closing
    the parent's connections. Done at the fork itself, so it holds for gunicorn's
    --preload and any other server that forks after the app is built.
    """
    engine_ref = weakref.ref(engine)

    def in_child() -> None:
        forked = engine_ref()
        if forked is not None:
            forked.dispose(close=False)

    os.register_at_fork(after_in_child=in_child)


def configure_sqlite(engine: Engine) -> None:
    """Turn on foreign keys and WAL, add search's fold, and let SQLAlchemy own transactions.

    The sqlite3 module begins transactions lazily and not at all for DDL, which
    breaks savepoints and isolation; SQLAlchemy's documented recipe emits BEGIN itself.
    It is BEGIN IMMEDIATE: a transaction that read first and writes later would
    otherwise fail at once with "database is locked" when another connection wrote
    in between, while IMMEDIATE makes it wait (up to the busy timeout) for its turn.
    A connection given the READS_ONLY execution option begins a plain (deferred)
    transaction instead, so it never waits for a writer.
    """

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()
        register_sqlite_functions(dbapi_connection)

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        # A read that must not wait for a writer (WAL lets it read the last commit) says so.
        reads_only = connection.get_execution_options().get(READS_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reads_only else "BEGIN IMMEDIATE")


def raise_time_limits(seconds: float) -> None:
    """Give the current transaction, and this request's database work, `seconds` from now.

    For the few requests that are slow by nature (a bulk import): SET LOCAL ends with the
    transaction, and the request's deadline with the request, so nothing else is let off.
    """
    watchdog.begin(seconds)
    limit_transaction(seconds)


def limit_transaction(seconds: float) -> None:
    """Let each statement and lock wait of the current transaction take up to `seconds`."""
    if db.session.get_bind().dialect.name == "postgresql":
        milliseconds = int(seconds * 1000)
        db.session.execute(
            text(
                f"SET LOCAL statement_timeout = {milliseconds}; "
                f"SET LOCAL lock_timeout = {milliseconds}"
            )
        )


def lift_time_limits() -> None:
    """Let the current transaction run without statement or lock timeouts (bulk CLI work)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0"))
