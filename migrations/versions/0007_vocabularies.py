"""Controlled vocabularies: the lists of paint types and colour families admins keep

Revision ID: 0007
Revises: 0006

Each list is made from the values the paints have: spellings that differ only in case
or spaces ("Blue", "blue", " BLUE ") become one entry, spelt as most paints spell it
(a tie: each word capitalised), and the paints are rewritten to that spelling. A shop
with no value of a kind yet starts with the usual ones. Downgrading drops the lists;
the paints keep their (canonical) values.
"""

import string
from collections import Counter, defaultdict
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

KINDS = ("color_type", "color_family")
STARTERS = {
    "color_type": (
        "Base",
        "Layer",
        "Shade",
        "Wash",
        "Contrast",
        "Dry",
        "Technical",
        "Metallic",
        "Primer",
        "Ink",
        "Acrylic",
        "Glaze",
        "Varnish",
        "Medium",
    ),
    "color_family": (
        "Red",
        "Orange",
        "Yellow",
        "Green",
        "Blue",
        "Purple",
        "Pink",
        "Brown",
        "Grey",
        "Black",
        "White",
        "Flesh",
    ),
}

terms = sa.table(
    "vocabulary_terms",
    sa.column("kind", sa.String),
    sa.column("name", sa.String),
    sa.column("match_key", sa.String),
)
paints = sa.table(
    "paints", sa.column("color_type", sa.String), sa.column("color_family", sa.String)
)
cache_epochs = sa.table(
    "cache_epochs", sa.column("reason", sa.String), sa.column("created_at", sa.DateTime)
)


def tidy(value: str) -> str:
    return " ".join(value.split())


def canonical_spellings(counts: dict[str, int]) -> dict[str, str]:
    """Map each stored value to the spelling its group keeps (None: a blank value)."""
    groups: dict[str, Counter] = defaultdict(Counter)
    for value, count in counts.items():
        if tidy(value):
            groups[tidy(value).casefold()][tidy(value)] += count
    chosen = {}
    for key, spellings in groups.items():
        ranked = spellings.most_common()
        best, most = ranked[0]
        # Case folding can lengthen a word ("ß" is "ss"): keep a spelling that fits.
        if len(ranked) > 1 and ranked[1][1] == most and len(string.capwords(key)) <= 50:
            best = string.capwords(key)
        chosen[key] = best
    return {value: (chosen[tidy(value).casefold()] if tidy(value) else None) for value in counts}


def upgrade():
    op.create_table(
        "vocabulary_terms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("match_key", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "kind IN ('color_type', 'color_family')",
            name=op.f("ck_vocabulary_terms_kind_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vocabulary_terms")),
        sa.UniqueConstraint("kind", "match_key", name=op.f("uq_vocabulary_terms_kind_match_key")),
    )
    connection = op.get_bind()
    rewritten = 0
    for kind in KINDS:
        column = paints.c[kind]
        counts = dict(
            connection.execute(
                sa.select(column, sa.func.count()).where(column.is_not(None)).group_by(column)
            ).all()
        )
        spellings = canonical_spellings(counts)
        for value, canonical in spellings.items():
            if canonical != value:
                result = connection.execute(
                    paints.update().where(column == value).values({kind: canonical})
                )
                rewritten += result.rowcount
        names = sorted({name for name in spellings.values() if name}) or STARTERS[kind]
        connection.execute(
            terms.insert(),
            [{"kind": kind, "name": name, "match_key": name.casefold()} for name in names],
        )
    if rewritten:
        # Cached copies of the paints hold the old spellings: start the cache afresh.
        connection.execute(
            cache_epochs.insert().values(
                reason="type and colour family spellings made canonical",
                created_at=datetime.now(UTC),
            )
        )


def downgrade():
    op.drop_table("vocabulary_terms")
