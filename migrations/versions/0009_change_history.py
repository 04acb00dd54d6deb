"""Change history: one entry per create, edit, delete, import, stock change or rename

Revision ID: 0009
Revises: 0008

Entries name their paint and admin by id and as text, without foreign keys, so a deleted
paint keeps its history and an entry outlives its admin. The stock movements recorded
before this revision become entries too (their stock before and after, reason and admin),
so a paint's timeline starts with its whole stock history; edits of other fields before
it were not recorded anywhere and cannot be.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

KINDS = ("create", "edit", "delete", "import", "stock", "rename", "merge")
# A movement's kind and the entry it becomes.
FROM_MOVEMENT = {
    "initial": "create",
    "import": "import",
    "correction": "edit",
    "adjustment": "stock",
}


def upgrade():
    op.create_table(
        "history_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=80), nullable=True),
        sa.Column("token_name", sa.String(length=100), nullable=True),
        sa.Column("paint_id", sa.Integer(), nullable=True),
        sa.Column("paint_brand", sa.String(length=100), nullable=True),
        sa.Column("paint_name", sa.String(length=200), nullable=True),
        sa.Column("paint_code", sa.String(length=50), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.CheckConstraint(
            "kind IN ({})".format(", ".join(f"'{kind}'" for kind in KINDS)),
            name=op.f("ck_history_entries_kind_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history_entries")),
    )
    _backfill_stock_movements()
    for columns in (
        ["paint_id", "created_at", "id"],
        ["user_id", "created_at", "id"],
        ["kind", "created_at", "id"],
        ["created_at", "id"],
    ):
        op.create_index(f"ix_history_entries_{'_'.join(columns)}", "history_entries", columns)


def _backfill_stock_movements():
    """Make each stock movement so far an entry: one INSERT ... SELECT, before the indexes."""
    dialect = op.get_bind().dialect.name
    build_object, build_array = (
        ("json_build_object", "json_build_array")
        if dialect == "postgresql"
        else ("json_object", "json_array")
    )
    kind = "CASE m.kind " + " ".join(
        f"WHEN '{movement}' THEN '{entry}'" for movement, entry in FROM_MOVEMENT.items()
    )
    before = "CASE WHEN m.kind IN ('initial', 'import') THEN NULL ELSE m.stock_after - m.delta END"
    op.execute(
        f"""
        INSERT INTO history_entries (created_at, kind, user_id, username, paint_id,
            paint_brand, paint_name, paint_code, changes, note)
        SELECT m.created_at, {kind} END, m.user_id, u.username, m.paint_id,
            p.brand, p.name, p.color_code,
            {build_object}('stock', {build_array}({before}, m.stock_after)), m.reason
        FROM stock_movements m
        JOIN paints p ON p.id = m.paint_id
        LEFT JOIN users u ON u.id = m.user_id
        ORDER BY m.id
        """
    )


def downgrade():
    for name in (
        "ix_history_entries_created_at_id",
        "ix_history_entries_kind_created_at_id",
        "ix_history_entries_user_id_created_at_id",
        "ix_history_entries_paint_id_created_at_id",
    ):
        op.drop_index(name, table_name="history_entries")
    op.drop_table("history_entries")
