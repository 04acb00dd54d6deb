"""Paint totals: the inventory figures as running totals, kept by the database

Revision ID: 0012
Revises: 0011

One row per brand and colour family ('' for a paint without one, so the pair is a key on
both databases) holds how many paints the pair has, their units, their stock value and how
many are above their reorder level, low (in stock, at or below it) or out of stock. Triggers
on paints keep the rows in the same transaction as every write, whichever code (or raw SQL)
makes it: on PostgreSQL one per statement, reading the statement's rows from its
transition tables (a bulk insert costs one grouped upsert, not one per paint), and one that
empties the totals with a TRUNCATE of paints; on SQLite one per row. The figures are then
the sum of about a hundred rows instead of a scan of every paint. The rows are filled from
the paints already there.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COUNTS = ("paints", "units", "value", "in_stock", "low_stock", "out_of_stock")
UPSERT_SET = ", ".join(f"{name} = paint_totals.{name} + excluded.{name}" for name in COUNTS)
# A paint's share of its group's figures, as SQL over a row `p` (see services.levels).
ABOVE = "p.stock - p.reorder_level > 0"
LOW = "p.stock >= 1 AND p.stock - p.reorder_level <= 0"
OUT = "p.stock = 0"


def _grouped(rows: str, sign: str = "1") -> str:
    """Return a SELECT of each group's figures over `rows` (aliased p), each times `sign`."""
    return (
        "SELECT p.brand, coalesce(p.color_family, '') AS color_family, "
        f"sum({sign}) AS paints, sum({sign} * p.stock) AS units, "
        f"sum({sign} * p.price * p.stock) AS value, "
        f"sum(CASE WHEN {ABOVE} THEN {sign} ELSE 0 END) AS in_stock, "
        f"sum(CASE WHEN {LOW} THEN {sign} ELSE 0 END) AS low_stock, "
        f"sum(CASE WHEN {OUT} THEN {sign} ELSE 0 END) AS out_of_stock "
        f"FROM {rows} GROUP BY p.brand, coalesce(p.color_family, '')"
    )


# PostgreSQL: the rows a statement inserted, deleted or changed, grouped, added in one
# upsert in key order (concurrent statements lock the group rows in the same order).
UPSERT_PG = (
    "INSERT INTO paint_totals AS paint_totals "
    "(brand, color_family, paints, units, value, in_stock, low_stock, out_of_stock) "
    "SELECT * FROM ({}) AS delta ORDER BY brand, color_family "
    f"ON CONFLICT (brand, color_family) DO UPDATE SET {UPSERT_SET}"
)
CHANGED_PG = (
    "(SELECT p.*, 1 AS sign FROM new_paints p JOIN old_paints o USING (id) "
    " WHERE (o.brand, o.color_family, o.stock, o.price, o.reorder_level) "
    " IS DISTINCT FROM (p.brand, p.color_family, p.stock, p.price, p.reorder_level) "
    " UNION ALL "
    " SELECT o.*, -1 FROM new_paints p JOIN old_paints o USING (id) "
    " WHERE (o.brand, o.color_family, o.stock, o.price, o.reorder_level) "
    " IS DISTINCT FROM (p.brand, p.color_family, p.stock, p.price, p.reorder_level)) AS p"
)
FUNCTIONS_PG = {
    "paint_totals_insert": UPSERT_PG.format(_grouped("new_paints AS p")),
    "paint_totals_delete": UPSERT_PG.format(_grouped("old_paints AS p", "-1")),
    "paint_totals_update": UPSERT_PG.format(_grouped(CHANGED_PG, "p.sign")),
    "paint_totals_truncate": "DELETE FROM paint_totals",
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
    """Return an upsert adding `sign` times the paint `row` (NEW or OLD) to its group."""
    share = (
        f"{sign}, {sign} * {row}.stock, {sign} * {row}.price * {row}.stock, "
        f"CASE WHEN {ABOVE} THEN {sign} ELSE 0 END, "
        f"CASE WHEN {LOW} THEN {sign} ELSE 0 END, "
        f"CASE WHEN {OUT} THEN {sign} ELSE 0 END"
    ).replace("p.", f"{row}.")
    return (
        "INSERT INTO paint_totals "
        "(brand, color_family, paints, units, value, in_stock, low_stock, out_of_stock) "
        f"VALUES ({row}.brand, coalesce({row}.color_family, ''), {share}) "
        f"ON CONFLICT (brand, color_family) DO UPDATE SET {UPSERT_SET};"
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
        sa.Column("brand", sa.String(length=100), nullable=False),
        sa.Column("color_family", sa.String(length=50), nullable=False),
        sa.Column("paints", sa.BigInteger(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column(
            "value", sa.Numeric(precision=18, scale=2).with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("in_stock", sa.BigInteger(), nullable=False),
        sa.Column("low_stock", sa.BigInteger(), nullable=False),
        sa.Column("out_of_stock", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("brand", "color_family", name=op.f("pk_paint_totals")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # No paint may change between the count and the triggers' first update.
        op.execute("LOCK TABLE paints IN SHARE MODE")
        for name, body in FUNCTIONS_PG.items():
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN {body}; RETURN NULL; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {name} {TRIGGERS_PG[name]} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            )
    else:
        for name, (when, body) in TRIGGERS_SQLITE.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")
    op.execute(
        "INSERT INTO paint_totals "
        "(brand, color_family, paints, units, value, in_stock, low_stock, out_of_stock) "
        + _grouped("paints AS p")
    )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in FUNCTIONS_PG:
            op.execute(f"DROP TRIGGER {name} ON paints")
            op.execute(f"DROP FUNCTION {name}()")
    else:
        for name in TRIGGERS_SQLITE:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("paint_totals")
