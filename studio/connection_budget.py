"""The connection budget: how many connections each worker's pool may hold, asked of the server.

Every studio connection is named `studio/<instance>/<pid>` (its `application_name`), so a
process starting up reads from `pg_stat_activity` how many instances and workers of studio
are live, instead of trusting STUDIO_INSTANCES and WEB_CONCURRENCY, which count only as
minimums. The arithmetic (`size_pools`, `recommend`) is pure; `read_server_view` asks the
server; `apply_pool_size` does both when the app is built (DB_POOL_SIZE=auto). The
observability extension's start-up check and `flask tune` use the same functions, so their
advice is what the start-up sizing does.
"""

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from .config import ConfigError, instance_id
from .resilience.faults import cause

__all__ = ["instance_id"]

logger = logging.getLogger(__name__)

APPLICATION = "studio"
# PostgreSQL keeps application_name to NAMEDATALEN - 1 bytes.
MAX_APPLICATION_NAME = 63
STUDIO_NAME = re.compile(r"studio/([A-Za-z0-9._-]+)/(\d+)")
# Kept free for a one-off shell, a migration or the monitor.
HEADROOM = 2
# Overflow connections are opened for a burst and closed after it; a few absorb one.
MAX_OVERFLOW = 5
# A spare connection beyond the threads: the cache-epoch poller and a background import
# each use one of the worker's pool now and then.
SPARE = 1
KEY = "studio.connection_budget"
REFUSED_OPTIONS = "unsupported startup parameter"
ADVICE = "Run 'flask --app wsgi tune' for advice."


def application_name(instance: str, pid: int) -> str:
    """Return `studio/<instance>/<pid>`, the instance cut from the left to fit 63 bytes."""
    tail = f"/{pid}"
    room = MAX_APPLICATION_NAME - len(APPLICATION) - 1 - len(tail)
    return f"{APPLICATION}/{instance[-room:]}{tail}"


def parse_application_name(name: str | None) -> tuple[str, int] | None:
    """Return (instance, pid) of a studio connection's name, or None for anyone else's."""
    found = STUDIO_NAME.fullmatch(name or "")
    return (found.group(1), int(found.group(2))) if found else None


def is_studio(name: str | None) -> bool:
    """Return whether a connection is studio's: named as now, or plain `studio` as before."""
    return name == APPLICATION or parse_application_name(name) is not None


@dataclass(frozen=True)
class ServerView:
    """What the server says: its limits, other clients' connections and studio's processes."""

    max_connections: int
    reserved: int
    in_use_by_others: int
    idle_timeout_seconds: float | None
    # (instance, pid) of every live studio process that holds a connection, one entry each.
    studio: tuple[tuple[str, int], ...] = ()

    @property
    def available(self) -> int:
        """Connections studio may count on, after superusers, other clients and headroom."""
        return max(self.max_connections - self.reserved - self.in_use_by_others - HEADROOM, 0)

    def instances_besides(self, me: str) -> set[str]:
        return {instance for instance, _ in self.studio} - {me}

    def most_workers(self, me: tuple[str, int]) -> int:
        """Return the most processes any one instance shows, counting this process in its own."""
        counts: dict[str, set[int]] = {me[0]: {me[1]}}
        for instance, pid in self.studio:
            counts.setdefault(instance, set()).add(pid)
        return max(len(pids) for pids in counts.values())


@dataclass(frozen=True)
class Hints:
    """What the environment says about the deployment; live counts may only raise it."""

    instances: int = 1  # STUDIO_INSTANCES
    workers: int = 1  # WEB_CONCURRENCY
    threads: int = 1  # THREADS_PER_WORKER
    overlap: int = 1  # DB_DEPLOY_OVERLAP: instances a deploy runs beside the live ones
    pgbouncer_pool: int | None = None  # DB_PGBOUNCER_POOL_SIZE, in PgBouncer mode


@dataclass(frozen=True)
class Sizing:
    """The pool each worker gets, and why."""

    pool_size: int
    max_overflow: int
    instances: int  # counted, this one included, before the deploy's overlap
    workers: int
    threads: int
    per_process: int
    fits: bool
    reasoning: list[str] = field(default_factory=list, compare=False)
    problem: str | None = None

    @property
    def summary(self) -> str:
        return self.reasoning[-1] if self.reasoning else ""


def size_pools(view: ServerView, me: tuple[str, int], hints: Hints) -> Sizing:
    """Return each worker's pool_size and max_overflow for this server and deployment.

    Instances: the more of STUDIO_INSTANCES and those seen live (this one included), plus
    DB_DEPLOY_OVERLAP for a deploy's new instances starting beside the old. Workers per
    instance: the more of WEB_CONCURRENCY and the most processes any instance shows. Each
    process gets an equal share; its pool covers its threads and one spare when the share
    allows, the rest of the share (at most MAX_OVERFLOW) is overflow. A share smaller than
    the threads does not fit: the pool takes the share and the problem is reported.
    """
    if hints.pgbouncer_pool is not None:
        return size_for_pgbouncer(view, hints)
    seen = view.instances_besides(me[0])
    instances = max(hints.instances, len(seen) + 1)
    workers = max(hints.workers, view.most_workers(me))
    counted = instances + hints.overlap
    per_process = view.available // (counted * workers)
    threads = hints.threads
    reasoning = [
        f"The server allows {view.max_connections} connections; {view.reserved} are reserved, "
        f"{view.in_use_by_others} are held by other clients and {HEADROOM} are kept free for "
        f"shells and migrations: {view.available} are left for studio.",
        f"Instances: {instances} (STUDIO_INSTANCES {hints.instances}, {len(seen) + 1} live "
        f"counting this one) + {hints.overlap} for a deploy's overlap = {counted}; workers each: "
        f"{workers} (WEB_CONCURRENCY {hints.workers}, most seen live "
        f"{view.most_workers(me)}): {view.available} // ({counted} x {workers}) = "
        f"{per_process} connection(s) per worker.",
    ]
    if per_process >= threads:
        pool_size = min(threads + SPARE, per_process)
        overflow = min(per_process - pool_size, MAX_OVERFLOW)
        problem = None
    else:
        pool_size, overflow = max(per_process, 1), 0
        problem = (
            f"each worker can have {per_process} connection(s), fewer than its {threads} "
            f"thread(s): {counted} instance(s) x {workers} worker(s) do not fit in "
            f"{view.available} connections; threads will queue for connections."
        )
    reasoning.append(
        f"pool_size {pool_size} + max_overflow {overflow} per worker for {threads} thread(s) "
        f"({counted} instance(s) x {workers} worker(s) x {pool_size + overflow} = "
        f"{counted * workers * (pool_size + overflow)} of {view.available})."
    )
    return Sizing(
        pool_size,
        overflow,
        instances,
        workers,
        threads,
        per_process,
        problem is None,
        reasoning,
        problem,
    )


def size_for_pgbouncer(view: ServerView, hints: Hints) -> Sizing:
    """Behind PgBouncer: the server holds PgBouncer's pool; studio keeps a few client connections.

    In transaction mode an idle client connection holds no server connection, so each
    worker keeps one per thread and a spare; what must fit in the server is PgBouncer's
    own pool (DB_PGBOUNCER_POOL_SIZE, the sum over every PgBouncer in front of it).
    """
    pool = hints.pgbouncer_pool or 0
    pool_size, overflow = hints.threads + SPARE, MAX_OVERFLOW
    reasoning = [
        f"Behind PgBouncer (transaction mode): the server allows {view.max_connections}, "
        f"{view.reserved} reserved, {view.in_use_by_others} held by other clients, {HEADROOM} "
        f"kept free: {view.available} for PgBouncer's pool of {pool} (DB_PGBOUNCER_POOL_SIZE).",
        f"pool_size {pool_size} + max_overflow {overflow} client connections to PgBouncer per "
        f"worker for {hints.threads} thread(s); they hold no server connection while idle.",
    ]
    problem = None
    if pool > view.available:
        problem = (
            f"PgBouncer's pool of {pool} exceeds the {view.available} connections the server "
            "can give; lower its default_pool_size (and DB_PGBOUNCER_POOL_SIZE) to fit."
        )
    return Sizing(
        pool_size,
        overflow,
        hints.instances,
        hints.workers,
        hints.threads,
        pool_size + overflow,
        problem is None,
        reasoning,
        problem,
    )


@dataclass(frozen=True)
class Recommendation:
    workers: int
    threads: int
    sizing: Sizing
    reasoning: list[str] = field(default_factory=list)


def recommend(view: ServerView, me: tuple[str, int], hints: Hints) -> Recommendation:
    """Return the workers, threads and pool that fit, fewest changes first, with the reasons.

    The pool is `size_pools`' for the recommended workers and threads, the very numbers
    DB_POOL_SIZE=auto picks at start for them, so following the advice never draws a warning.
    """
    sizing = size_pools(view, me, hints)
    if sizing.fits:
        return Recommendation(hints.workers, hints.threads, sizing)
    workers = hints.workers
    while workers > 1 and not sizing.fits:
        workers -= 1
        sizing = size_pools(view, me, replace(hints, workers=workers))
    threads = hints.threads
    while threads > 1 and not sizing.fits:
        threads -= 1
        sizing = size_pools(view, me, replace(hints, workers=workers, threads=threads))
    reasoning = [
        f"{hints.workers} worker(s) of {hints.threads} thread(s) do not fit: "
        f"{workers} worker(s) of {threads} thread(s) do."
    ]
    if sizing.workers > workers:
        reasoning = [
            f"Live instances already run {sizing.workers} worker(s) each; even one worker of "
            f"{threads} thread(s) would not fit beside them."
        ]
    if not sizing.fits:
        reasoning.append(
            "Even one worker of one thread does not fit: put PgBouncer in front of the server "
            "(DB_POOL=pgbouncer), stop other clients, or take a plan with more connections."
        )
    return Recommendation(workers, threads, sizing, reasoning)


def probe_url(url: str, connect_args: Mapping[str, Any]) -> ServerView:
    """Open one connection (closed before returning) and read the server's view."""
    engine = create_engine(url, poolclass=NullPool, connect_args=dict(connect_args))
    try:
        with engine.connect() as connection:
            return read_server_view(connection)
    finally:
        engine.dispose()


LIMITS_SQL = text(
    "SELECT current_setting('max_connections')::int, "
    "current_setting('superuser_reserved_connections')::int "
    # PostgreSQL 16's reserved_connections (NULL before it).
    "+ coalesce(current_setting('reserved_connections', true)::int, 0), "
    "(SELECT min(setting::float) / 1000 FROM pg_settings WHERE name IN "
    " ('idle_session_timeout', 'idle_in_transaction_session_timeout') AND setting <> '0')"
)
# Another role's sessions show no backend_type without pg_read_all_stats, but their
# usesysid; the server's own processes have none.
ACTIVITY_SQL = text(
    "SELECT application_name FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
    "AND (backend_type = 'client backend' OR (backend_type IS NULL AND usesysid IS NOT NULL))"
)


def read_server_view(connection: Any) -> ServerView:
    """Read the server's limits and who holds its connections, on an open connection."""
    max_connections, reserved, idle_timeout = connection.execute(LIMITS_SQL).one()
    others, studio = 0, set()
    for (name,) in connection.execute(ACTIVITY_SQL):
        parsed = parse_application_name(name)
        if parsed is None:
            # A plain `studio` (a version before this one) holds connections of unknown shape.
            others += 1
        else:
            studio.add(parsed)
    return ServerView(max_connections, reserved, others, idle_timeout, tuple(sorted(studio)))


def hints_from(config: Mapping[str, Any], pgbouncer: bool) -> Hints:
    return Hints(
        instances=config["STUDIO_INSTANCES"],
        workers=config["WEB_CONCURRENCY"],
        threads=config["THREADS_PER_WORKER"],
        overlap=config["DB_DEPLOY_OVERLAP"],
        pgbouncer_pool=config["DB_PGBOUNCER_POOL_SIZE"] if pgbouncer else None,
    )


def me(config: Mapping[str, Any]) -> tuple[str, int]:
    """Return this process as the server sees it: (instance, pid)."""
    return config["STUDIO_INSTANCE_ID"], os.getpid()


@dataclass
class Outcome:
    """What the start-up sizing found, kept on the app for the budget check and `tune`."""

    sizing: Sizing | None
    view: ServerView | None
    pgbouncer: bool
    detected: bool = False


def apply_pool_size(app: Flask) -> Outcome | None:
    """Size this process's pool from the server (DB_POOL_SIZE=auto), before the engine is made.

    The probe is a connection of its own, closed at once: a gunicorn master building the
    app for --preload hands no connection to its workers. A server that cannot be reached
    leaves a small fixed pool (threads + 1, no overflow), said in the log; never a crash.
    """
    config = app.config
    url = make_url(config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        return None
    if not config["DB_POOL_AUTO"]:
        return None
    pgbouncer = config["DB_POOL"] == "pgbouncer"
    options = config["SQLALCHEMY_ENGINE_OPTIONS"]
    connect_args = {**options["connect_args"], "application_name": application_name(*me(config))}
    outcome = Outcome(None, None, pgbouncer)
    try:
        outcome.view = probe(url, connect_args, outcome)
    except SQLAlchemyError as exc:
        fall_back(app, cause(exc))
        app.extensions[KEY] = outcome
        return outcome
    if outcome.pgbouncer and not pgbouncer:
        use_pgbouncer(app)
    outcome.sizing = size_pools(outcome.view, me(config), hints_from(config, outcome.pgbouncer))
    set_pool(app, outcome.sizing)
    app.extensions[KEY] = outcome
    if outcome.sizing.problem and config["DB_BUDGET_STRICT"]:
        raise ConfigError(f"Refusing to start: {outcome.sizing.problem} (DB_BUDGET_STRICT is set)")
    return outcome


def probe(url: URL, connect_args: dict[str, Any], outcome: Outcome) -> ServerView:
    """Read the server's view; a refused `options` parameter means PgBouncer: ask without it."""
    address = url.render_as_string(hide_password=False)
    if outcome.pgbouncer:
        connect_args.pop("options", None)
    try:
        return probe_url(address, connect_args)
    except SQLAlchemyError as exc:
        if REFUSED_OPTIONS not in str(exc) or "options" not in connect_args:
            raise
    connect_args.pop("options")
    outcome.pgbouncer = outcome.detected = True
    return probe_url(address, connect_args)


def use_pgbouncer(app: Flask) -> None:
    """Switch to PgBouncer's mode after detecting it: timeouts per transaction, no options."""
    config = app.config
    config["DB_POOL"] = "pgbouncer"
    config["DB_TIMEOUTS_PER"] = "transaction"
    options = config["SQLALCHEMY_ENGINE_OPTIONS"]
    connect_args = {k: v for k, v in options["connect_args"].items() if k != "options"}
    config["SQLALCHEMY_ENGINE_OPTIONS"] = {**options, "connect_args": connect_args}
    logger.warning(
        "connection budget: the server refused connection options, as PgBouncer does: "
        "running in PgBouncer mode (timeouts set per transaction). Set DB_POOL=pgbouncer "
        "to say so and skip the detection."
    )


def fall_back(app: Flask, reason: str) -> None:
    """Give the pool a small fixed size when the server could not be asked."""
    threads = app.config["THREADS_PER_WORKER"]
    sizing = Sizing(threads + SPARE, 0, 0, 0, threads, 0, True)
    set_pool(app, sizing, log=False)
    logger.warning(
        "connection budget: the database could not be asked (%s); pool_size %d, "
        "max_overflow 0 until this worker restarts",
        reason,
        threads + SPARE,
    )


def set_pool(app: Flask, sizing: Sizing, log: bool = True) -> None:
    """Put the sizing into the engine options; explicit DB_POOL_SIZE/DB_MAX_OVERFLOW win."""
    config = app.config
    options = dict(config["SQLALCHEMY_ENGINE_OPTIONS"])
    options["pool_size"] = sizing.pool_size
    if config["DB_MAX_OVERFLOW_AUTO"]:
        options["max_overflow"] = sizing.max_overflow
    config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    if not log:
        return
    for line in sizing.reasoning[:-1]:
        logger.debug("connection budget: %s", line)
    logger.info("connection budget: %s", sizing.summary)
    if sizing.problem:
        logger.warning("connection budget: %s %s", sizing.problem, ADVICE)
