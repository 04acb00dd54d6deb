"""What the database's planner believes about the tables, refreshed after writes in bulk."""

from typing import Any

from sqlalchemy import Select, text

from ..extensions import db

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
