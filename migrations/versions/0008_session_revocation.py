"""Sessions that end on the server: a per-user session generation, and signed-out sessions

Revision ID: 0008
Revises: 0007

Every browser session carries its user's session generation; moving it on ends them all.
A signed-out session's id is kept until the session would have expired anyway, so a copy
of its cookie is refused. Sessions signed in before this revision carry no generation and
must sign in again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_generation", sa.Integer(), server_default="1", nullable=False)
        )
    op.create_table(
        "ended_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ended_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ended_sessions")),
    )
    op.create_index(
        "ix_ended_sessions_user_id_expires_at", "ended_sessions", ["user_id", "expires_at"]
    )


def downgrade():
    op.drop_index("ix_ended_sessions_user_id_expires_at", table_name="ended_sessions")
    op.drop_table("ended_sessions")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_generation")
