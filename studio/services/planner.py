"""What the database's planner believes about the tables, refreshed after writes in bulk."""

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, text
from sqlalchemy.exc import DBAPIError

from ..extensions import db
from ..resilience.faults import DatabaseUnavailable

logger = logging.getLogger(__name__)
BULK_LOADED_TABLES = ("paints", "stock_movements", "history_entries")
# A write that changes at least this many paints refreshes the statistics itself.
BULK_ROWS = 1000


def refresh_statistics() -> None:
    """ANALYZE the tables a bulk load grew, inside the load's transaction.

    Until autovacuum gets round to it the planner would go on believing the tables as
    they were: the listing's estimated counts ("about 10,001" after 20,000 paints) and
    its plans. ANALYZE counts and samples the transaction's own new rows, and its
    statistics commit with them. It reads a sample of 30,000 rows whatever the size of
    the table: 0.3-0.8 s at 200,000 paints on the benchmark machine.
    """
    for table in BULK_LOADED_TABLES:
        db.session.execute(text(f"ANALYZE {table}"))


def vacuum_tables(tables: Sequence[str] = BULK_LOADED_TABLES) -> bool:
    """VACUUM (ANALYZE) tables after a bulk load has committed; False if it could not.

    Besides fresh statistics, VACUUM sets the visibility map of the pages the load wrote.
    Until it is set an index-only scan visits the table for every entry it reads, which
    is what a numbered page deep in the listing does to skip the pages before it (2 s
    instead of 50 ms for page 20,000 of a million paints); it also moves the trigram
    index's pending entries into the index proper. Autovacuum would do this later, or
    never where it is off. VACUUM cannot run inside a transaction: it gets a connection
    of its own, in autocommit, so call it after the load's commit, and off the request
    thread for a big load (about a second per 100,000 paints). A table another VACUUM
    or an open ANALYZE holds is skipped rather than waited for. The load has committed,
    so a failure is only logged. Nothing on SQLite, which has no visibility map.
    """
    bind = db.engine
    if bind.dialect.name != "postgresql":
        return False
    names = ", ".join(tables)
    try:
        with bind.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql("SET statement_timeout = 0")
            try:
                connection.exec_driver_sql(f"VACUUM (ANALYZE, SKIP_LOCKED) {names}")
            finally:
                connection.exec_driver_sql("RESET statement_timeout")
    except (DBAPIError, DatabaseUnavailable) as exc:
        logger.warning("could not VACUUM (ANALYZE) %s after a bulk load: %s", names, exc)
        return False
    logger.info("VACUUM (ANALYZE) %s after a bulk load", names)
    return True


def estimated_rows(statement: Select[Any]) -> int:
    """Return the number of rows PostgreSQL's planner expects `statement` to return."""
    connection = db.session.connection()
    compiled = statement.compile(dialect=connection.dialect)
    cursor = connection.connection.cursor()
    try:
        cursor.execute("EXPLAIN (FORMAT JSON) " + compiled.string, compiled.params)
        plan = cursor.fetchone()[0]
    finally:
        cursor.close()
    return int(plan[0]["Plan"]["Plan Rows"])
