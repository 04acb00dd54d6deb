"""Paint totals: the inventory figures as running totals, kept by the database

Revision ID: 0012
Revises: 0011

The figures (how many paints, their units, their stock value, and how many are above their
reorder level, low or out of stock) are kept per brand and colour family ('' for a paint
without one) in paint_totals. Triggers on paints add each write's difference to them in the
write's own transaction, whatever code or SQL makes it: on PostgreSQL once per statement,
from its transition tables (a bulk insert adds one difference per group, not per paint),
plus a TRUNCATE of paints emptying the totals; on SQLite once per row.

A group may have several rows ("slots"), its figures being their sum. A PostgreSQL writer
adds to a slot of the group no other open transaction holds (FOR UPDATE SKIP LOCKED), or
to a new one when every slot is held: a row lock lasts until the writer commits, so with
one row per group a long import would keep every stock adjustment of its groups waiting,
and two bulk changes could deadlock on them. Slots only grow with the writers a group ever
had at once, and are updated in place (HOT), so the table stays small without VACUUM.
SQLite has one writer at a time and one slot per group.

An UPDATE's rows are grouped as they were (out) and as they are (in), with no join: what
did not change cancels out in its group, and a plan kept from a one-paint write stays good
for a bulk one and the other way round. The trigger functions run without JIT, which a
plan kept from a bulk statement would otherwise bring to every later one-paint write
(0.8 s of compiling each). The rows are filled from the paints already there.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

FIGURES = ("paints", "units", "value", "in_stock", "low_stock", "out_of_stock")
COLUMNS = "brand, color_family, " + ", ".join(FIGURES)
# A paint's share of its group's figures, over a row `p` (see services.levels).
ABOVE = "p.stock - p.reorder_level > 0"
LOW = "p.stock >= 1 AND p.stock - p.reorder_level <= 0"
OUT = "p.stock = 0"
INDEX = "ix_paint_totals_brand_color_family"


def _shares(sign: str) -> tuple[str, ...]:
    """Return a paint `p`'s share of each figure, times `sign`."""
    return (
        sign,
        f"{sign} * p.stock",
        f"{sign} * p.price * p.stock",
        f"CASE WHEN {ABOVE} THEN {sign} ELSE 0 END",
        f"CASE WHEN {LOW} THEN {sign} ELSE 0 END",
        f"CASE WHEN {OUT} THEN {sign} ELSE 0 END",
    )


def _grouped(rows: str, sign: str = "1", *, changed_only: bool = False) -> str:
    """Return a SELECT of each group's figures over `rows` (aliased p), each times `sign`.

    `changed_only` leaves out the groups whose figures add up to no change.
    """
    sums = [f"sum({share})" for share in _shares(sign)]
    having = " HAVING " + " OR ".join(f"{total} <> 0" for total in sums) if changed_only else ""
    named = ", ".join(f"{total} AS {name}" for total, name in zip(sums, FIGURES, strict=True))
    return (
        f"SELECT p.brand, coalesce(p.color_family, '') AS color_family, {named} "
        f"FROM {rows} GROUP BY p.brand, coalesce(p.color_family, ''){having}"
    )


ADD_TO_SLOT_PG = (
    "FOR delta IN {} ORDER BY 1, 2 LOOP "
    "  slot := NULL; "
    "  SELECT id INTO slot FROM paint_totals "
    "   WHERE brand = delta.brand AND color_family = delta.color_family "
    "   LIMIT 1 FOR UPDATE SKIP LOCKED; "
    "  IF slot IS NULL THEN "
    f"   INSERT INTO paint_totals ({COLUMNS}) VALUES (delta.brand, delta.color_family, "
    + ", ".join(f"delta.{name}" for name in FIGURES)
    + "); "
    "  ELSE "
    "   UPDATE paint_totals SET "
    + ", ".join(f"{name} = {name} + delta.{name}" for name in FIGURES)
    + " WHERE id = slot; "
    "  END IF; "
    "END LOOP;"
)
# An UPDATE's new rows in, its old rows out.
BOTH_SIDES_PG = (
    "(SELECT *, 1 AS sign FROM new_paints UNION ALL SELECT *, -1 FROM old_paints) AS p"
)
FUNCTIONS_PG = {
    "paint_totals_insert": ADD_TO_SLOT_PG.format(_grouped("new_paints AS p")),
    "paint_totals_delete": ADD_TO_SLOT_PG.format(_grouped("old_paints AS p", "-1")),
    "paint_totals_update": ADD_TO_SLOT_PG.format(
        _grouped(BOTH_SIDES_PG, "p.sign", changed_only=True)
    ),
    "paint_totals_truncate": "DELETE FROM paint_totals;",
}
TRIGGERS_PG = {
    "paint_totals_insert": "AFTER INSERT ON paints REFERENCING NEW TABLE AS new_paints",
    "paint_totals_delete": "AFTER DELETE ON paints REFERENCING OLD TABLE AS old_paints",
    "paint_totals_update": (
        "AFTER UPDATE ON paints REFERENCING OLD TABLE AS old_paints NEW TABLE AS new_paints"
    ),
    "paint_totals_truncate": "AFTER TRUNCATE ON paints",
}


def _add_row_sqlite(row: str, sign: str) -> str:
    """Return the statements adding `sign` times the paint `row` (NEW or OLD) to its group."""
    shares = [share.replace("p.", f"{row}.") for share in _shares(sign)]
    group = (
        f"brand = {row}.brand AND color_family = coalesce({row}.color_family, '')"
    )
    added = ", ".join(f"{name} = {name} + {share}" for name, share in zip(FIGURES, shares, strict=True))
    return (
        f"UPDATE paint_totals SET {added} WHERE id = "
        f"(SELECT min(id) FROM paint_totals WHERE {group}); "
        f"INSERT INTO paint_totals ({COLUMNS}) "
        f"SELECT {row}.brand, coalesce({row}.color_family, ''), {', '.join(shares)} "
        f"WHERE NOT EXISTS (SELECT 1 FROM paint_totals WHERE {group});"
    )


CHANGED_SQLITE = " OR ".join(
    f"OLD.{column} IS NOT NEW.{column}"
    for column in ("brand", "color_family", "stock", "price", "reorder_level")
)
TRIGGERS_SQLITE = {
    "paint_totals_insert": ("AFTER INSERT ON paints FOR EACH ROW", _add_row_sqlite("NEW", "1")),
    "paint_totals_delete": ("AFTER DELETE ON paints FOR EACH ROW", _add_row_sqlite("OLD", "-1")),
    "paint_totals_update": (
        "AFTER UPDATE OF brand, color_family, stock, price, reorder_level ON paints "
        f"FOR EACH ROW WHEN {CHANGED_SQLITE}",
        _add_row_sqlite("OLD", "-1") + " " + _add_row_sqlite("NEW", "1"),
    ),
}


def upgrade():
    op.create_table(
        "paint_totals",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("brand", sa.String(length=100), nullable=False),
        sa.Column("color_family", sa.String(length=50), nullable=False),
        sa.Column("paints", sa.BigInteger(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column(
            "value",
            sa.Numeric(precision=18, scale=2).with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("in_stock", sa.BigInteger(), nullable=False),
        sa.Column("low_stock", sa.BigInteger(), nullable=False),
        sa.Column("out_of_stock", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paint_totals")),
    )
    op.create_index(INDEX, "paint_totals", ["brand", "color_family"])
    if op.get_bind().dialect.name == "postgresql":
        # No paint may change between the count below and the triggers' first difference.
        op.execute("LOCK TABLE paints IN SHARE MODE")
        for name, body in FUNCTIONS_PG.items():
            # Without JIT: a plan kept from a bulk statement would otherwise compile its
            # expressions again (most of a second) for every one-paint write after it.
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql SET jit = off AS "
                f"$$ DECLARE delta record; slot bigint; BEGIN {body} RETURN NULL; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {name} {TRIGGERS_PG[name]} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            )
    else:
        for name, (when, body) in TRIGGERS_SQLITE.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")
    op.execute(f"INSERT INTO paint_totals ({COLUMNS}) " + _grouped("paints AS p"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in FUNCTIONS_PG:
            op.execute(f"DROP TRIGGER {name} ON paints")
            op.execute(f"DROP FUNCTION {name}()")
    else:
        for name in TRIGGERS_SQLITE:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_index(INDEX, table_name="paint_totals")
    op.drop_table("paint_totals")
