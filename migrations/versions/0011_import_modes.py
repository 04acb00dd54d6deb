"""Import modes: an upload adds paints, updates existing ones, or receives a delivery

Revision ID: 0011
Revises: 0010

An upload says what it does (`mode`) and, for a delivery, the delivery note's reference.
Its rows may leave out what a price list or a delivery note does not carry (name, stock,
price), carry a delivery's quantity and unit cost, and note the paint they matched at the
check with its version, so that the confirmation sees what changed since. Stock movements
get the kind `delivery`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

PRICE = sa.Numeric(precision=10, scale=2).with_variant(sa.Integer(), "sqlite")
KINDS_BEFORE = "kind IN ('initial', 'adjustment', 'import', 'correction')"
KINDS_AFTER = "kind IN ('initial', 'adjustment', 'import', 'correction', 'delivery')"


def upgrade():
    with op.batch_alter_table("import_uploads") as batch:
        batch.add_column(
            sa.Column("mode", sa.String(length=10), server_default="add", nullable=False)
        )
        batch.add_column(sa.Column("reference", sa.String(length=200), nullable=True))
        batch.create_check_constraint(
            op.f("ck_import_uploads_mode_known"), "mode IN ('add', 'update', 'receive')"
        )
    with op.batch_alter_table("import_rows") as batch:
        batch.alter_column("name", existing_type=sa.String(length=200), nullable=True)
        batch.alter_column("stock", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("price", existing_type=PRICE, nullable=True)
        # A price list or delivery that leaves the reorder level alone.
        batch.alter_column(
            "reorder_level", existing_type=sa.Integer(), existing_server_default="5", nullable=True
        )
        batch.add_column(sa.Column("quantity", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("unit_cost", PRICE, nullable=True))
        batch.add_column(sa.Column("paint_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("paint_version", sa.Integer(), nullable=True))
    _movement_kinds(KINDS_AFTER)


def downgrade():
    op.execute("DELETE FROM stock_movements WHERE kind = 'delivery'")
    _movement_kinds(KINDS_BEFORE)
    op.execute("DELETE FROM import_uploads WHERE mode != 'add'")
    with op.batch_alter_table("import_rows") as batch:
        batch.drop_column("paint_version")
        batch.drop_column("paint_id")
        batch.drop_column("unit_cost")
        batch.drop_column("quantity")
        batch.alter_column("price", existing_type=PRICE, nullable=False)
        batch.alter_column(
            "reorder_level", existing_type=sa.Integer(), existing_server_default="5", nullable=False
        )
        batch.alter_column("stock", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("name", existing_type=sa.String(length=200), nullable=False)
    with op.batch_alter_table("import_uploads") as batch:
        batch.drop_constraint(op.f("ck_import_uploads_mode_known"), type_="check")
        batch.drop_column("reference")
        batch.drop_column("mode")


def _movement_kinds(condition: str) -> None:
    with op.batch_alter_table("stock_movements") as batch:
        batch.drop_constraint(op.f("ck_stock_movements_kind_known"), type_="check")
        batch.create_check_constraint(op.f("ck_stock_movements_kind_known"), condition)
