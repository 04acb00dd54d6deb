"""Indexes for every sort order of the paint listing

Each listing sort (name, brand, stock, price, created_at) gets an index ending in the
id that breaks ties, so deep pages and keyset pages are read in index order. The
single-column stock and created_at indexes become prefixes of these, and the lone
color_family index is dropped: (color_family, color_type) already starts with it.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SORT_INDEXES = {
    "ix_paints_name_id": ["name", "id"],
    "ix_paints_brand_id": ["brand", "id"],
    "ix_paints_stock_id": ["stock", "id"],
    "ix_paints_price_id": ["price", "id"],
    "ix_paints_created_at_id": ["created_at", "id"],
}
REPLACED = {
    "ix_paints_stock": ["stock"],
    "ix_paints_created_at": ["created_at"],
    "ix_paints_color_family": ["color_family"],
}


def upgrade():
    for name, columns in SORT_INDEXES.items():
        op.create_index(name, "paints", columns)
    for name in REPLACED:
        op.drop_index(name, table_name="paints")


def downgrade():
    for name, columns in REPLACED.items():
        op.create_index(name, "paints", columns)
    for name in SORT_INDEXES:
        op.drop_index(name, table_name="paints")
