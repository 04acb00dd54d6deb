"""A type's paints by price and by brand, and a family's by name, read in order

Revision ID: 0015
Revises: 0014

A type belongs to one brand or a few (Base, Layer and Contrast are Citadel's, Heavy Body is
Golden's and Liquitex's), and a brand keeps to its prices. The planner expects a type's
paints to be spread along every order, so "Base, cheapest first" walked the price index
past the 600,000 paints of cheaper brands before its first match, and "Base by brand" past
every brand before Citadel: 0.1-0.9 s at 1,000,000 demo paints. These two indexes hold
each type's paints in price and in brand order, as ix_paints_brand_price_id does for a
brand by price.
A family's names share its colour words ("Pale Ivory", "Wild Bone" are white), so white
paints by name, last first, walked past every "Wild" name after "Wild Pearl": a third
index holds each family's paints in name order.
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_paints_color_type_price_id": ["color_type", "price", "id"],
    "ix_paints_color_type_brand_id": ["color_type", "brand", "id"],
    "ix_paints_color_family_name_id": ["color_family", "name", "id"],
}


def upgrade():
    for name, columns in INDEXES.items():
        op.create_index(name, "paints", columns)


def downgrade():
    for name in INDEXES:
        op.drop_index(name, table_name="paints")
