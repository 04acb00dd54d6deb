"""Let PostgreSQL compute the inventory figures from indexes alone; brand by price

The totals need stock and price, the colour-family breakdown needs stock: carried as
INCLUDE columns, they let the aggregates use index-only scans. SQLite ignores INCLUDE.
Prices follow the brand, so one brand's paints by price get an index of their own.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_paints_stock_id": (["stock", "id"], ["price"]),
    "ix_paints_color_family_color_type": (["color_family", "color_type"], ["stock"]),
}


def _rebuild(include: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (columns, included) in INDEXES.items():
        op.drop_index(name, table_name="paints")
        extra = {"postgresql_include": included} if include else {}
        op.create_index(name, "paints", columns, **extra)


def upgrade():
    _rebuild(include=True)
    op.create_index("ix_paints_brand_price_id", "paints", ["brand", "price", "id"])


def downgrade():
    op.drop_index("ix_paints_brand_price_id", table_name="paints")
    _rebuild(include=False)
