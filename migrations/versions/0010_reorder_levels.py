"""Reorder levels: each paint's own low-stock level and the quantity to order

Revision ID: 0010
Revises: 0009

A paint is low (and on the reorder list) when its stock is at or below its reorder_level;
existing paints, and rows waiting in an import, get 5, the default of LOW_STOCK_THRESHOLD,
which until now was the one level of every paint. reorder_quantity is how many to order
(none: enough to bring the stock back above the level). Two partial indexes keep the
paints at or below their level (stock - reorder_level <= 0), in the reorder list's order
and in stock order; on PostgreSQL, statistics of stock - reorder_level let the planner
know how many paints that is. Cached copies of paints lack the new fields, so the cache
starts afresh.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DEFAULT_LEVEL = 5
AT_OR_BELOW_LEVEL = "stock - reorder_level <= 0"
INDEXES = {
    # On PostgreSQL with what the brand totals add up, read from the index alone.
    "ix_paints_reorder_brand_name_id": (
        ["brand", "name", "id"],
        ["stock", "reorder_level", "reorder_quantity"],
    ),
    "ix_paints_reorder_stock_id": (["stock", "id"], []),
}
STATISTICS = "st_paints_stock_over_level"
cache_epochs = sa.table(
    "cache_epochs", sa.column("reason", sa.String), sa.column("created_at", sa.DateTime)
)


def add_columns(table, checked):
    """Add both columns; on paints with their checks, as column constraints.

    Plain ALTER TABLE on SQLite too: batch mode would copy paints and drop the old table,
    which deletes every stock movement (ON DELETE CASCADE).
    """
    level_check = quantity_check = ""
    if checked:
        level_check = (
            f" CONSTRAINT ck_{table}_reorder_level_not_negative CHECK (reorder_level >= 0)"
        )
        quantity_check = (
            f" CONSTRAINT ck_{table}_reorder_quantity_positive CHECK (reorder_quantity >= 1)"
        )
    op.execute(
        f"ALTER TABLE {table} ADD COLUMN reorder_level INTEGER DEFAULT '{DEFAULT_LEVEL}' "
        f"NOT NULL{level_check}"
    )
    op.execute(f"ALTER TABLE {table} ADD COLUMN reorder_quantity INTEGER{quantity_check}")


def upgrade():
    add_columns("paints", checked=True)
    add_columns("import_rows", checked=False)
    for name, (columns, included) in INDEXES.items():
        op.create_index(
            name,
            "paints",
            columns,
            postgresql_include=included,
            postgresql_where=sa.text(AT_OR_BELOW_LEVEL),
            sqlite_where=sa.text(AT_OR_BELOW_LEVEL),
        )
    bind = op.get_bind()
    # Statistics of an expression: PostgreSQL 14 and later (ANALYZE fills them).
    if bind.dialect.name == "postgresql" and bind.dialect.server_version_info >= (14,):
        op.execute(f"CREATE STATISTICS {STATISTICS} ON (stock - reorder_level) FROM paints")
        op.execute("ANALYZE paints")
    op.execute(
        cache_epochs.insert().values(
            reason="paints gained reorder levels", created_at=datetime.now(UTC)
        )
    )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")
    for name in INDEXES:
        op.drop_index(name, table_name="paints")
    for table in ("import_rows", "paints"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN reorder_quantity")
        op.execute(f"ALTER TABLE {table} DROP COLUMN reorder_level")
