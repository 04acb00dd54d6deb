"""The name order with each paint's search text, for broad searches that stop at the page

A search that matches tens of thousands of paints (a colour, a brand) is listed by
walking the sort order and testing each paint until the page is full, instead of sorting
every match (studio.services.listing.search_walk). Names are what searches find, so
in name order the matches of a word come in runs, and the walk may read many paints
before the first one: this index carries the search text with the name order, so that
walk reads the index alone. PostgreSQL only (SQLite sorts its matches, as before). About
100 bytes a paint; the plain (name, id) index stays for the listing's other pages, which
it serves with a third of the reading.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

NAME = "ix_paints_name_id_search"


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("SET LOCAL maintenance_work_mem = '256MB'")
    op.create_index(NAME, "paints", ["name", "id"], postgresql_include=["search_text"])


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(NAME, table_name="paints")
