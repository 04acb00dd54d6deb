"""Moving a shop from SQLite to PostgreSQL: ids kept, figures checked, one transaction.

What is copied is the shop itself: admins (their password hashes, as they are), API
tokens (their SHA-256, so every token keeps working), signed-out sessions (a copied
cookie stays refused), the types and colour families lists, paints, their stock
movements and the history of changes. What is runtime state stays behind: idempotency
keys (24 hours of replies), checked CSV files waiting for confirmation (an admin uploads
again) and the cache's epochs (the copy starts a new one instead, so no worker serves what
Redis held before).

The copy, the emptying of the target (--force), the sequences and the new epoch are one
transaction on the target, and the figures of both sides are compared before it
commits: a copy that does not add up leaves the target as it was.
"""

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import Connection, Table, create_engine, func, select, text, type_coerce
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from ..database import configure_sqlite, lift_time_limits
from ..extensions import READS_ONLY, db
from ..models import (
    ApiToken,
    EndedSession,
    HistoryEntry,
    IdempotencyKey,
    ImportRow,
    ImportUpload,
    Money,
    Paint,
    StockMovement,
    User,
    VocabularyTerm,
)
from . import planner, transactions
from .cache_epochs import add_epoch
from .errors import ServiceError

logger = logging.getLogger(__name__)
BATCH_ROWS = 5000
# In the order their foreign keys need.
COPIED: tuple[Table, ...] = tuple(
    model.__table__  # type: ignore[attr-defined]
    for model in (User, ApiToken, EndedSession, VocabularyTerm, Paint, StockMovement, HistoryEntry)
)
# Runtime state: not copied, and emptied with the copied tables by --force.
LEFT_BEHIND: tuple[Table, ...] = tuple(
    model.__table__  # type: ignore[attr-defined]
    for model in (IdempotencyKey, ImportRow, ImportUpload)
)
# Every new database gets the usual types and families from the migrations: the source's
# lists replace them, and they alone do not make a target "not empty".
REPLACED_ALWAYS = (VocabularyTerm.__table__,)
paints_table = Paint.__table__
movements_table = StockMovement.__table__


class CopyRefused(ServiceError):
    """The copy cannot start: the databases are not as it needs them; nothing was changed."""

    code = "copy_refused"


class CopyMismatch(ServiceError):
    """The copied figures differ from the source's; the copy was rolled back."""

    code = "copy_mismatch"


@dataclass(frozen=True)
class Figures:
    """What a database holds: rows per copied table, units in stock, stock value, deltas."""

    rows: dict[str, int]
    units: int
    value: Decimal
    deltas: int

    def differences(self, copied: "Figures") -> dict[str, str]:
        """Return each figure that differs, saying what each side holds."""
        pairs = {
            **{f"{name} rows": (count, copied.rows.get(name)) for name, count in self.rows.items()},
            "units in stock": (self.units, copied.units),
            "stock value": (self.value, copied.value),
            "sum of movements": (self.deltas, copied.deltas),
        }
        return {
            name: f"{source} in the source, {target} copied"
            for name, (source, target) in pairs.items()
            if source != target
        }

    def summary(self) -> str:
        """Return the figures in one line."""
        rows = ", ".join(f"{count:,} {name}" for name, count in self.rows.items())
        return (
            f"{rows}; {self.units:,} units in stock worth {self.value:,.2f}; "
            f"movements summing to {self.deltas:,}"
        )


@dataclass
class CopyReport:
    """What the copy found in the source, and whether it copied it."""

    source: Figures
    copied: bool
    emptied: dict[str, int] = field(default_factory=dict)


def copy_shop(
    source_url: str,
    *,
    force: bool = False,
    dry_run: bool = False,
    on_rows: Callable[[int, int], None] | None = None,
) -> CopyReport:
    """Copy the shop at `source_url` (SQLite) into the app's database (PostgreSQL).

    Refuses a target that holds anything unless `force`, which empties it in the copy's
    own transaction. A dry run checks and counts everything and writes nothing.
    `on_rows(copied, total)` is told of each batch.
    """
    target = db.session.connection()
    if target.dialect.name != "postgresql":
        raise CopyRefused(
            "The target must be PostgreSQL.",
            {"DATABASE_URL": "names a SQLite database: set it to the PostgreSQL database."},
        )
    # Counting and copying a large shop takes longer than a request's statement timeout.
    lift_time_limits()
    source_engine = _source_engine(source_url)
    try:
        with source_engine.connect() as source:
            # One read transaction: a consistent snapshot however long the copy takes.
            source = source.execution_options(**{READS_ONLY: True})
            with source.begin():
                return _copy(source, force=force, dry_run=dry_run, on_rows=on_rows)
    finally:
        source_engine.dispose()


def _copy(
    source: Connection,
    *,
    force: bool,
    dry_run: bool,
    on_rows: Callable[[int, int], None] | None,
) -> CopyReport:
    _check_heads(source)
    figures = measure(source)
    occupied = _occupied_tables()
    if occupied and not force:
        listed = ", ".join(f"{count:,} {name}" for name, count in occupied.items())
        raise CopyRefused(
            f"The target database is not empty ({listed}).",
            {"--force": "empties the target's tables first, in the copy's transaction."},
        )
    if dry_run:
        db.session.rollback()
        return CopyReport(figures, copied=False, emptied=occupied)
    started = time.monotonic()
    with transactions.one_transaction():
        _empty_target(everything=force)
        total, done = sum(figures.rows.values()), 0
        for table in COPIED:
            for batch in _batches(source, table):
                db.session.execute(table.insert(), [_target_row(row) for row in batch])
                done += len(batch)
                if on_rows is not None:
                    on_rows(done, total)
        copied_at = time.monotonic()
        _reset_sequences()
        add_epoch(db.session, "the shop was copied into this database")
        copied = measure(db.session.connection())
        differences = figures.differences(copied)
        if differences:
            raise CopyMismatch("The copy does not add up; nothing was copied.", differences)
    committed_at = time.monotonic()
    analyze_copied_tables()
    logger.info(
        "copied %d rows in %.1f s, checked and committed in %.1f s, vacuumed in %.1f s",
        done,
        copied_at - started,
        committed_at - copied_at,
        time.monotonic() - committed_at,
    )
    return CopyReport(figures, copied=True, emptied=occupied)


def _source_engine(source_url: str) -> Any:
    """Return an engine on the SQLite file at `source_url`, which must exist."""
    try:
        url = make_url(source_url)
    except ArgumentError:
        raise CopyRefused(
            "The source is not a database URL.",
            {"--from": "expected e.g. sqlite:///instance/studio.db."},
        ) from None
    if url.get_backend_name() != "sqlite" or not url.database:
        raise CopyRefused(
            "The source must be a SQLite database file.",
            {"--from": "expected e.g. sqlite:///instance/studio.db."},
        )
    if not Path(url.database).is_file():
        raise CopyRefused(
            "The source database does not exist.",
            {"--from": f"no such file: {url.database}."},
        )
    engine = create_engine(url)
    configure_sqlite(engine)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT count(*) FROM sqlite_master")
    except DBAPIError:
        engine.dispose()
        raise CopyRefused(
            "The source is not a SQLite database.",
            {"--from": f"{url.database} could not be read as one."},
        ) from None
    return engine


def migration_head() -> str:
    """Return the newest revision among the app's migrations."""
    directory = current_app.extensions["migrate"].directory
    return ScriptDirectory(directory).get_current_head()


def _check_heads(source: Connection) -> None:
    """Refuse unless both databases are at the migrations' newest revision."""
    head = migration_head()
    source_heads = MigrationContext.configure(source).get_current_heads()
    target_heads = MigrationContext.configure(db.session.connection()).get_current_heads()
    problems = {}
    if source_heads != (head,):
        problems["--from"] = (
            f"is at revision {', '.join(source_heads) or 'none'}, not {head}: run "
            f"`DATABASE_URL=sqlite:///{Path(source.engine.url.database or '').resolve()} "
            "flask --app wsgi db upgrade` first (a relative SQLite path in DATABASE_URL is "
            "taken from the instance folder)."
        )
    if target_heads != (head,):
        problems["DATABASE_URL"] = (
            f"is at revision {', '.join(target_heads) or 'none'}, not {head}: run "
            "`flask --app wsgi db upgrade` first."
        )
    if problems:
        raise CopyRefused("Both databases must be at the same migration revision.", problems)


def measure(connection: Connection) -> Figures:
    """Return the figures the copy is checked by, as `connection` sees the database."""
    rows = {
        table.name: connection.scalar(select(func.count()).select_from(table)) for table in COPIED
    }
    units, value = connection.execute(
        select(
            func.coalesce(func.sum(paints_table.c.stock), 0),
            type_coerce(
                func.coalesce(func.sum(paints_table.c.price * paints_table.c.stock), 0), Money()
            ),
        )
    ).one()
    deltas = connection.scalar(select(func.coalesce(func.sum(movements_table.c.delta), 0)))
    return Figures(rows, int(units), value, int(deltas))


def _occupied_tables() -> dict[str, int]:
    """Return the target's tables (copied or runtime state) that hold rows, with their counts."""
    counts = {}
    for table in (*COPIED, *LEFT_BEHIND):
        if table in REPLACED_ALWAYS:
            continue
        count = db.session.scalar(select(func.count()).select_from(table))
        if count:
            counts[table.name] = count
    return counts


def _empty_target(*, everything: bool) -> None:
    """Make room for the copy: the lists the migrations made, or (--force) every table.

    Every table is the copied ones and the runtime state that points at them; never
    cache_epochs, whose ids must only grow.
    """
    tables = (*LEFT_BEHIND, *reversed(COPIED)) if everything else REPLACED_ALWAYS
    db.session.execute(text(f"TRUNCATE {', '.join(table.name for table in tables)}"))


def _copied_columns(table: Table) -> list[Any]:
    # The search column is computed by each database from the others.
    return [column for column in table.c if column.computed is None]


def _batches(source: Connection, table: Table) -> Iterator[list[dict[str, Any]]]:
    """Yield the table's rows in id order, BATCH_ROWS at a time (keyset, not OFFSET)."""
    columns = _copied_columns(table)
    last = None
    while True:
        query = select(*columns).order_by(table.c.id).limit(BATCH_ROWS)
        if last is not None:
            query = query.where(table.c.id > last)
        batch = [dict(row) for row in source.execute(query).mappings()]
        if not batch:
            return
        last = batch[-1]["id"]
        yield batch


def _target_row(row: dict[str, Any]) -> dict[str, Any]:
    """Return a source row as the target takes it.

    SQLite keeps times as text without their zone; studio writes them in UTC, and
    PostgreSQL would otherwise read them in its session's time zone.
    """
    return {
        name: value.replace(tzinfo=UTC)
        if isinstance(value, datetime) and value.tzinfo is None
        else value
        for name, value in row.items()
    }


def _reset_sequences() -> None:
    """Point each copied table's id sequence past its largest id, so new rows follow."""
    for table in COPIED:
        db.session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"coalesce(max(id), 0) + 1, false) FROM {table.name}"
            )
        )


def analyze_copied_tables() -> None:
    """VACUUM (ANALYZE) the copied tables: planner statistics and visibility map for the load."""
    planner.vacuum_tables([table.name for table in COPIED])
