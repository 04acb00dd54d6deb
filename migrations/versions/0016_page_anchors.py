"""Anchors for deep numbered pages, and the change counts that tell when they hold

A numbered page deep in the listing (page 20,000) skipped 400,000 entries of the sort
index. `paint_page_anchors` keeps every Nth paint of each order over all paints, so such
a page seeks the index from the nearest anchor and skips fewer than N entries.

Anchors hold only while the order they describe has not changed since they were built:
PostgreSQL triggers count, in `paint_order_changes`, every statement that inserts or
deletes paints (every order) or updates a sort column (that column's orders), in the
writer's own transaction. A reader compares the count with the anchor's in the same
statement, so it never uses an anchor a committed write has made wrong. The count of each
column is spread over 16 slots; a writer takes one that no other open transaction holds
(FOR UPDATE SKIP LOCKED, its connection's own first), so writers wait on each other only
when 16 hold them all. SQLite gets the tables but no triggers: it never uses
anchors (see studio.services.anchors).

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# Prices are NUMERIC(10,2) on PostgreSQL and whole cents on SQLite (see studio.models.Money).
PRICE = sa.Numeric(precision=10, scale=2).with_variant(sa.Integer(), "sqlite")
SLOTS = 16
ORDER_COLUMNS = ("name", "brand", "price", "stock", "created_at")
UPDATED_COLUMNS = ("name", "brand", "price", "stock")


def upgrade():
    op.create_table(
        "paint_order_changes",
        sa.Column("sort_column", sa.String(length=20), nullable=False),
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("changes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sort_column", "slot", name=op.f("pk_paint_order_changes")),
    )
    op.create_table(
        "paint_page_anchors",
        sa.Column("sort", sa.String(length=20), nullable=False),
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("paint_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("brand", sa.String(length=100), nullable=False),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes_at_build", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sort", "position", name=op.f("pk_paint_page_anchors")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION paint_order_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            counted text;
            chosen integer;
        BEGIN
            FOREACH counted IN ARRAY TG_ARGV LOOP
                -- A slot no other open transaction holds, the connection's own first: a
                -- long import holding one never makes a stock adjustment wait for it.
                SELECT slot INTO chosen FROM paint_order_changes
                 WHERE sort_column = counted
                 ORDER BY slot = pg_backend_pid() % {SLOTS} DESC, slot
                 LIMIT 1 FOR UPDATE SKIP LOCKED;
                INSERT INTO paint_order_changes (sort_column, slot, changes)
                VALUES (counted, coalesce(chosen, pg_backend_pid() % {SLOTS}), 1)
                ON CONFLICT (sort_column, slot)
                DO UPDATE SET changes = paint_order_changes.changes + 1;
            END LOOP;
            RETURN NULL;
        END
        $$
        """
    )
    every = ", ".join(f"'{column}'" for column in ORDER_COLUMNS)
    op.execute(
        "INSERT INTO paint_order_changes (sort_column, slot, changes) "
        f"SELECT sort_column, slot, 0 FROM unnest(ARRAY[{every}]) AS sort_column, "
        f"generate_series(0, {SLOTS - 1}) AS slot"
    )
    op.execute(
        "CREATE TRIGGER paints_order_rows AFTER INSERT OR DELETE OR TRUNCATE ON paints "
        f"FOR EACH STATEMENT EXECUTE FUNCTION paint_order_changed({every})"
    )
    for column in UPDATED_COLUMNS:
        op.execute(
            f"CREATE TRIGGER paints_order_{column} AFTER UPDATE OF {column} ON paints "
            f"FOR EACH STATEMENT EXECUTE FUNCTION paint_order_changed('{column}')"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for column in UPDATED_COLUMNS:
            op.execute(f"DROP TRIGGER paints_order_{column} ON paints")
        op.execute("DROP TRIGGER paints_order_rows ON paints")
        op.execute("DROP FUNCTION paint_order_changed()")
    op.drop_table("paint_page_anchors")
    op.drop_table("paint_order_changes")
