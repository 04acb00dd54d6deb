"""Staged CSV imports: a checked file's rows wait server-side for their admin's confirmation

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Prices are NUMERIC(10,2) on PostgreSQL and whole cents on SQLite (see studio.models.Money).
PRICE = sa.Numeric(precision=10, scale=2).with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "import_uploads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("encoding", sa.String(length=30), nullable=True),
        sa.Column("delimiter", sa.String(length=1), nullable=True),
        sa.Column("problems", sa.Text(), nullable=True),
        sa.Column("problem_count", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('checking', 'refused', 'checked', 'importing', 'imported', 'failed')",
            name=op.f("ck_import_uploads_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_import_uploads_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_uploads")),
    )
    op.create_index("ix_import_uploads_user_id", "import_uploads", ["user_id"])
    op.create_index("ix_import_uploads_created_at", "import_uploads", ["created_at"])
    op.create_table(
        "import_rows",
        sa.Column("upload_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("brand", sa.String(length=100), nullable=False),
        sa.Column("color_code", sa.String(length=50), nullable=True),
        sa.Column("color_type", sa.String(length=50), nullable=True),
        sa.Column("color_family", sa.String(length=50), nullable=True),
        sa.Column("image_url", sa.String(length=500), nullable=True),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("color_preview", sa.String(length=7), nullable=True),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["import_uploads.id"],
            name=op.f("fk_import_rows_upload_id_import_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("upload_id", "position", name=op.f("pk_import_rows")),
    )


def downgrade():
    op.drop_table("import_rows")
    op.drop_index("ix_import_uploads_created_at", table_name="import_uploads")
    op.drop_index("ix_import_uploads_user_id", table_name="import_uploads")
    op.drop_table("import_uploads")
