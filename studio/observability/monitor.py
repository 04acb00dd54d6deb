"""The monitor: studio's database and Redis seen from their side, with alerts.

It reads what the servers report (connections, running queries, sizes, memory), not
what a worker measured, so it works from a one-off shell that serves no requests.
"""

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
import redis
from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..connection_budget import is_studio
from ..extensions import db
from ..services import cached_reads
from .budget import connection_limits

logger = logging.getLogger(__name__)

STATEMENT_TIMEOUT_MS = 5000
LONGEST_QUERIES = 5
QUERY_TEXT_CHARS = 200
STATE_ORDER = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")

CONNECTIONS_SQL = text(
    "SELECT coalesce(application_name, ''), coalesce(state, 'unknown'), count(*) "
    "FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
    "GROUP BY 1, 2"
)
# clock_timestamp(), not now(): now() stands still for the whole transaction.
LONGEST_SQL = text(
    "SELECT pid, coalesce(application_name, ''), state, "
    "extract(epoch FROM clock_timestamp() - query_start)::float, left(query, 1000) "
    "FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' AND state = 'active' "
    "AND pid <> pg_backend_pid() AND datname = current_database() "
    "ORDER BY query_start LIMIT :limit"
)
TABLES_SQL = text(
    "SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid), "
    "pg_indexes_size(c.oid) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') "
    "ORDER BY 2 DESC, 1"
)
# Unique and primary-key indexes enforce constraints, scanned or not.
UNUSED_INDEXES_SQL = text(
    "SELECT s.indexrelname, s.relname, pg_relation_size(s.indexrelid) "
    "FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid "
    "WHERE s.schemaname = 'public' AND s.idx_scan = 0 "
    "AND NOT i.indisunique AND NOT i.indisprimary "
    "ORDER BY 3 DESC, 1"
)


@dataclass(frozen=True)
class Connections:
    """Client connections to the whole server, by state, not counting the monitor's own."""

    max_connections: int
    reserved: int
    studio: dict[str, int]
    others: dict[str, int]
    others_by_application: dict[str, int]

    @property
    def in_use(self) -> int:
        return sum(self.studio.values()) + sum(self.others.values())

    @property
    def usable(self) -> int:
        """Connections open to ordinary roles: max_connections less the superusers' reserve."""
        return self.max_connections - self.reserved

    @property
    def left(self) -> int:
        return self.usable - self.in_use

    @property
    def percent_in_use(self) -> float:
        return 100.0 * self.in_use / self.usable if self.usable > 0 else 100.0


@dataclass(frozen=True)
class Query:
    pid: int
    application_name: str
    state: str
    seconds: float
    query: str


@dataclass(frozen=True)
class Table:
    name: str
    total_bytes: int
    table_bytes: int
    index_bytes: int


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    bytes: int


@dataclass(frozen=True)
class DatabaseView:
    connections: Connections
    longest_queries: list[Query]
    tables: list[Table]
    unused_indexes: list[Index]


@dataclass(frozen=True)
class RedisView:
    """Redis's own figures, and studio's cache counters kept there; or why there are none."""

    status: str
    error: str | None = None
    used_memory: int | None = None
    maxmemory: int | None = None
    connected_clients: int | None = None
    keyspace_hits: int | None = None
    keyspace_misses: int | None = None
    studio_cache: dict[str, Any] | None = None

    @property
    def hit_rate(self) -> float | None:
        lookups = (self.keyspace_hits or 0) + (self.keyspace_misses or 0)
        return round((self.keyspace_hits or 0) / lookups, 4) if lookups else None

    @property
    def memory_percent(self) -> float | None:
        if not self.maxmemory or self.used_memory is None:
            return None
        return 100.0 * self.used_memory / self.maxmemory


@dataclass(frozen=True)
class Snapshot:
    taken_at: str
    database_status: str
    database_note: str | None
    database: DatabaseView | None
    redis: RedisView | None


@dataclass(frozen=True)
class Thresholds:
    """The monitor's alerts: figures the servers report, each with a setting of its own."""

    query_seconds: float  # ALERT_QUERY_SECONDS, as for the workers' slow_query alert
    connections_percent: float  # ALERT_CONNECTIONS_PERCENT of the usable connections
    redis_memory_percent: float  # ALERT_REDIS_MEMORY_PERCENT of Redis's maxmemory

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Thresholds":
        return cls(
            config["ALERT_QUERY_SECONDS"],
            config["ALERT_CONNECTIONS_PERCENT"],
            config["ALERT_REDIS_MEMORY_PERCENT"],
        )


@dataclass(frozen=True)
class Alert:
    name: str
    message: str


def take_snapshot() -> Snapshot:
    """Read the database's and Redis's figures once."""
    database, status, note = read_database()
    config = current_app.config
    redis_url = config.get("CACHE_REDIS_URL") or config.get("REDIS_URL")
    return Snapshot(
        taken_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        database_status=status,
        database_note=note,
        database=database,
        redis=read_redis(redis_url) if redis_url else None,
    )


def read_database() -> tuple[DatabaseView | None, str, str | None]:
    """Return the PostgreSQL view with its status ("ok", "unreachable", "unsupported")."""
    dialect = db.engine.dialect.name
    if dialect != "postgresql":
        return None, "unsupported", f"the database view needs PostgreSQL; this is {dialect}"
    try:
        db.session.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
        # Activity and statistics are frozen per transaction once read; start afresh.
        db.session.execute(text("SELECT pg_stat_clear_snapshot()"))
        view = DatabaseView(_connections(), _longest_queries(), _tables(), _unused_indexes())
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        reason = type(cause).__name__
        logger.warning("monitor: cannot read the database (%s): %s", reason, str(cause).strip())
        return None, "unreachable", f"unreachable ({reason})"
    finally:
        db.session.rollback()
    return view, "ok", None


def _connections() -> Connections:
    studio: dict[str, int] = {}
    others: dict[str, int] = {}
    by_application: dict[str, int] = {}
    for application, state, count in db.session.execute(CONNECTIONS_SQL):
        if is_studio(application):
            studio[state] = studio.get(state, 0) + count
            continue
        others[state] = others.get(state, 0) + count
        name = application or "(no name)"
        by_application[name] = by_application.get(name, 0) + count
    max_connections, reserved = connection_limits()
    return Connections(max_connections, reserved, studio, others, by_application)


def _longest_queries() -> list[Query]:
    rows = db.session.execute(LONGEST_SQL, {"limit": LONGEST_QUERIES})
    return [
        Query(pid, application, state, round(seconds, 3), _one_line(query))
        for pid, application, state, seconds, query in rows
    ]


def _one_line(query: str) -> str:
    flat = " ".join((query or "").split())
    return flat if len(flat) <= QUERY_TEXT_CHARS else flat[: QUERY_TEXT_CHARS - 3] + "..."


def _tables() -> list[Table]:
    return [Table(*row) for row in db.session.execute(TABLES_SQL)]


def _unused_indexes() -> list[Index]:
    return [Index(*row) for row in db.session.execute(UNUSED_INDEXES_SQL)]


def read_redis(url: str) -> RedisView:
    """Return Redis's memory, clients and hit counts, and studio's cache counters."""
    # One try: a frame should not wait out the client's retries.
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1, retry=None)
    try:
        info = client.info()
    except RedisError as exc:
        logger.warning("monitor: Redis unreachable: %s", exc)
        return RedisView("unreachable", error=type(exc).__name__)
    finally:
        client.close()
    return RedisView(
        "ok",
        used_memory=info["used_memory"],
        maxmemory=info.get("maxmemory", 0),
        connected_clients=info["connected_clients"],
        keyspace_hits=info["keyspace_hits"],
        keyspace_misses=info["keyspace_misses"],
        studio_cache=_studio_cache(),
    )


def _studio_cache() -> dict[str, Any] | None:
    """Return every worker's cache counters, or None when they are not kept in Redis."""
    status = cached_reads.status()
    if not status["shared"] or status["state"] != "ok":
        return None
    return {name: status[name] for name in ("hits", "misses", "errors", "hit_rate")}


def check_alerts(snapshot: Snapshot, limits: Thresholds) -> list[Alert]:
    """Return the alerts for every figure at or over its threshold."""
    alerts = []
    if snapshot.database_status == "unreachable":
        alerts.append(Alert("database_unreachable", f"the database is {snapshot.database_note}"))
    if snapshot.database is not None:
        alerts.extend(_query_alerts(snapshot.database.longest_queries, limits))
        alerts.extend(_connection_alerts(snapshot.database.connections, limits))
    if snapshot.redis is not None:
        alerts.extend(_memory_alerts(snapshot.redis, limits))
    return alerts


def _query_alerts(queries: list[Query], limits: Thresholds) -> list[Alert]:
    slow = [query for query in queries if query.seconds >= limits.query_seconds]
    if not slow:
        return []
    longest = max(slow, key=lambda query: query.seconds)
    more = f" ({len(slow)} queries over)" if len(slow) > 1 else ""
    return [
        Alert(
            "slow_query",
            f"query pid {longest.pid} ({longest.application_name or 'no name'}) has run "
            f"{longest.seconds:.1f} s (alert at {limits.query_seconds:g} s){more}",
        )
    ]


def _connection_alerts(connections: Connections, limits: Thresholds) -> list[Alert]:
    if connections.percent_in_use < limits.connections_percent:
        return []
    return [
        Alert(
            "connections",
            f"{connections.percent_in_use:.0f} % of usable connections in use: "
            f"{connections.in_use} of {connections.usable} (max_connections "
            f"{connections.max_connections} less {connections.reserved} reserved; "
            f"alert at {limits.connections_percent:g} %)",
        )
    ]


def _memory_alerts(view: RedisView, limits: Thresholds) -> list[Alert]:
    percent = view.memory_percent
    if percent is None or percent < limits.redis_memory_percent:
        return []
    return [
        Alert(
            "redis_memory",
            f"Redis uses {percent:.0f} % of maxmemory: {human_size(view.used_memory)} of "
            f"{human_size(view.maxmemory)} (alert at {limits.redis_memory_percent:g} %)",
        )
    ]


def show(as_json: bool) -> list[Alert]:
    """Take a snapshot, print it with its alerts, and return the alerts."""
    snapshot = take_snapshot()
    alerts = check_alerts(snapshot, Thresholds.from_config(current_app.config))
    click.echo(render_json(snapshot, alerts) if as_json else render_text(snapshot, alerts))
    return alerts


def watch(interval: float, as_json: bool, frames: int | None = None) -> None:
    """Show a snapshot every `interval` seconds, `frames` times or until interrupted."""
    clear = not as_json and sys.stdout.isatty()
    shown = 0
    next_at = time.monotonic()
    while frames is None or shown < frames:
        time.sleep(max(next_at - time.monotonic(), 0))
        next_at = time.monotonic() + interval
        if clear:
            click.clear()
        show(as_json)
        if clear:
            click.echo(f"Every {interval:g} s; Ctrl-C to stop.")
        shown += 1


def as_dict(snapshot: Snapshot, alerts: list[Alert]) -> dict[str, Any]:
    """Return the snapshot and its alerts as plain data, derived figures included."""
    data = dataclasses.asdict(snapshot)
    if snapshot.database is not None:
        connections = snapshot.database.connections
        data["database"]["connections"].update(
            in_use=connections.in_use,
            usable=connections.usable,
            left=connections.left,
            percent_in_use=round(connections.percent_in_use, 1),
        )
    if snapshot.redis is not None:
        percent = snapshot.redis.memory_percent
        data["redis"].update(
            hit_rate=snapshot.redis.hit_rate,
            memory_percent=None if percent is None else round(percent, 1),
        )
    data["alerts"] = [dataclasses.asdict(alert) for alert in alerts]
    return data


def render_json(snapshot: Snapshot, alerts: list[Alert]) -> str:
    """Return the snapshot as one line of JSON."""
    return json.dumps(as_dict(snapshot, alerts))


def render_text(snapshot: Snapshot, alerts: list[Alert]) -> str:
    """Return the snapshot as aligned sections for a terminal."""
    lines = [f"studio monitor, {snapshot.taken_at}"]
    if snapshot.database is None:
        lines += ["", "Database", f"  {snapshot.database_note}"]
    else:
        lines += _database_lines(snapshot.database)
    lines += ["", "Redis", *_redis_lines(snapshot.redis)]
    lines += ["", "Alerts", *([f"  {a.name}: {a.message}" for a in alerts] or ["  none"])]
    return "\n".join(lines)


def _database_lines(view: DatabaseView) -> list[str]:
    connections = view.connections
    return [
        "",
        f"Connections: {connections.in_use} of {connections.usable} usable in use, "
        f"{connections.left} left (max_connections {connections.max_connections}, "
        f"{connections.reserved} reserved; not counting this monitor)",
        *_connection_lines(connections),
        "",
        f"Longest queries (active, this database, top {LONGEST_QUERIES})",
        *_query_lines(view.longest_queries),
        "",
        "Tables",
        *_table_lines(view.tables),
        "",
        "Unused indexes (no scans since the statistics were reset)",
        *_unused_index_lines(view.unused_indexes),
    ]


def _connection_lines(connections: Connections) -> list[str]:
    states = set(connections.studio) | set(connections.others)
    ordered = [s for s in STATE_ORDER if s in states] + sorted(states - set(STATE_ORDER))
    rows = [
        (state, str(connections.studio.get(state, 0)), str(connections.others.get(state, 0)))
        for state in ordered
    ]
    lines = aligned(("state", "studio", "others"), rows, right={1, 2}) if rows else ["  none"]
    if connections.others_by_application:
        counts = sorted(connections.others_by_application.items(), key=lambda item: -item[1])
        lines.append("  others by application: " + ", ".join(f"{n} {c}" for n, c in counts))
    return lines


def _query_lines(queries: list[Query]) -> list[str]:
    rows = [(str(q.pid), f"{q.seconds:.1f}", q.application_name or "-", q.query) for q in queries]
    if not rows:
        return ["  none"]
    return aligned(("pid", "seconds", "application", "query"), rows, right={0, 1})


def _table_lines(tables: list[Table]) -> list[str]:
    rows = [
        (t.name, human_size(t.total_bytes), human_size(t.table_bytes), human_size(t.index_bytes))
        for t in tables
    ]
    if not rows:
        return ["  none"]
    return aligned(("table", "total", "data", "indexes"), rows, right={1, 2, 3})


def _unused_index_lines(indexes: list[Index]) -> list[str]:
    rows = [(i.name, i.table, human_size(i.bytes)) for i in indexes]
    return aligned(("index", "table", "size"), rows, right={2}) if rows else ["  none"]


def _redis_lines(view: RedisView | None) -> list[str]:
    if view is None:
        return ["  not configured (set REDIS_URL or CACHE_REDIS_URL)"]
    if view.status != "ok":
        return [f"  {view.status} ({view.error})"]
    limit = (
        f"of {human_size(view.maxmemory)} maxmemory ({view.memory_percent:.1f} %)"
        if view.maxmemory
        else "(no maxmemory limit)"
    )
    rows = [
        ("memory", f"{human_size(view.used_memory)} used {limit}"),
        ("clients", f"{view.connected_clients} connected"),
        (
            "server hits",
            f"{_percent(view.hit_rate)} ({view.keyspace_hits} hits, {view.keyspace_misses} misses)",
        ),
        ("studio cache", _studio_cache_text(view.studio_cache)),
    ]
    return aligned(None, rows)


def _studio_cache_text(counts: dict[str, Any] | None) -> str:
    if counts is None:
        return "counters not kept in this Redis"
    return (
        f"{_percent(counts['hit_rate'])} (hits {counts['hits']}, misses {counts['misses']}, "
        f"errors {counts['errors']})"
    )


def _percent(rate: float | None) -> str:
    return "no lookups yet" if rate is None else f"{100 * rate:.1f} %"


def aligned(
    header: tuple[str, ...] | None, rows: list[tuple[str, ...]], right: Collection[int] = ()
) -> list[str]:
    """Return rows as indented lines in columns, `right` ones right-aligned."""
    table = [header, *rows] if header else rows
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return ("  " + "  ".join(cells)).rstrip()

    return [line(row) for row in table]


def human_size(size: int | None) -> str:
    """Return a byte count the way people read it: 512 B, 8.0 KiB, 1.2 GiB."""
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"
