"""Controlled vocabularies for type and colour family (placeholder, filled in by the vocabulary change)

Revision ID: 0007
Revises: 0006
"""

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
