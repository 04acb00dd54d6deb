"""One brand's paints by price

Prices follow the brand, so listing one brand by price would otherwise walk most of
the price index before meeting that brand's paints.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_paints_brand_price_id", "paints", ["brand", "price", "id"])


def downgrade():
    op.drop_index("ix_paints_brand_price_id", table_name="paints")
