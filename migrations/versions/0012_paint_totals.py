"""Paint totals: the inventory figures as running totals, kept by the database

Revision ID: 0012
Revises: 0011

The figures (how many paints, their units, their stock value, and how many are above their
reorder level, low or out of stock) are kept per brand and colour family ('' for a paint
without one) in paint_totals, whose rows are differences: triggers on paints add one row
per group a statement (PostgreSQL) or a paint (SQLite) changed, in the write's own
transaction, whatever code or SQL makes it. Rows are only ever added, so writers never wait
for each other; the figures of a group are the sum of its rows. Now and then (about one
row added in fifty) the rows are folded into one per group: on PostgreSQL the rows no other
transaction holds (SKIP LOCKED), deleted and summed in one statement; on SQLite, which has
one writer at a time, all of them. A TRUNCATE of paints empties the totals. The rows are
filled from the paints already there.

An UPDATE's rows are grouped as they were (out) and as they are (in), with no join: what
did not change cancels out in its group, and a plan kept from a one-paint write stays good
for a bulk one and the other way round. The trigger functions run without JIT, which a
plan kept from a bulk statement would otherwise bring to every later one-paint write
(0.8 s of compiling each).
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

FIGURES = ("paints", "units", "value", "in_stock", "low_stock", "out_of_stock")
COLUMNS = "brand, color_family, " + ", ".join(FIGURES)
SUMS = ", ".join(f"sum({name})" for name in FIGURES)
# A fold keeps the groups whose sums are not all zero (a group with no paints left goes).
NOT_ALL_ZERO = " OR ".join(f"sum({name}) <> 0" for name in FIGURES)
# A paint's share of its group's figures, over a row `p` (see services.levels).
ABOVE = "p.stock - p.reorder_level > 0"
LOW = "p.stock >= 1 AND p.stock - p.reorder_level <= 0"
OUT = "p.stock = 0"


def _grouped(rows: str, sign: str = "1", *, changed_only: bool = False) -> str:
    """Return a SELECT of each group's figures over `rows` (aliased p), each times `sign`.

    `changed_only` leaves out the groups whose figures add up to no change.
    """
    sums = (
        f"sum({sign})",
        f"sum({sign} * p.stock)",
        f"sum({sign} * p.price * p.stock)",
        f"sum(CASE WHEN {ABOVE} THEN {sign} ELSE 0 END)",
        f"sum(CASE WHEN {LOW} THEN {sign} ELSE 0 END)",
        f"sum(CASE WHEN {OUT} THEN {sign} ELSE 0 END)",
    )
    having = " HAVING " + " OR ".join(f"{total} <> 0" for total in sums) if changed_only else ""
    return (
        f"SELECT p.brand, coalesce(p.color_family, ''), {', '.join(sums)} "
        f"FROM {rows} GROUP BY p.brand, coalesce(p.color_family, ''){having}"
    )


ADD_PG = f"INSERT INTO paint_totals ({COLUMNS}) {{}}"
# An UPDATE's new rows in, its old rows out: what did not change cancels out within its
# group (no join of the two, whose size the planner cannot know).
BOTH_SIDES_PG = (
    "(SELECT *, 1 AS sign FROM new_paints UNION ALL SELECT *, -1 FROM old_paints) AS p"
)
FOLD_PG = (
    "CREATE FUNCTION paint_totals_fold() RETURNS void LANGUAGE sql SET jit = off AS $$ "
    "WITH folded AS (DELETE FROM paint_totals WHERE id IN "
    "  (SELECT id FROM paint_totals FOR UPDATE SKIP LOCKED) RETURNING *) "
    f"INSERT INTO paint_totals ({COLUMNS}) SELECT brand, color_family, {SUMS} FROM folded "
    f"GROUP BY brand, color_family HAVING {NOT_ALL_ZERO} $$"
)
# About one row in fifty: each single-paint write has a 2 % chance, a statement that added a
# row to 50 groups or more (a batch of a bulk insert) always folds.
FOLD_SOMETIMES_PG = (
    "GET DIAGNOSTICS added = ROW_COUNT; "
    "IF random() * 50 < added THEN PERFORM paint_totals_fold(); END IF;"
)
FUNCTIONS_PG = {
    "paint_totals_insert": ADD_PG.format(_grouped("new_paints AS p")) + "; " + FOLD_SOMETIMES_PG,
    "paint_totals_delete": (
        ADD_PG.format(_grouped("old_paints AS p", "-1")) + "; " + FOLD_SOMETIMES_PG
    ),
    "paint_totals_update": (
        ADD_PG.format(_grouped(BOTH_SIDES_PG, "p.sign", changed_only=True))
        + "; "
        + FOLD_SOMETIMES_PG
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
    """Return an INSERT of `sign` times the paint `row`'s (NEW or OLD) share of its group."""
    share = (
        f"{sign}, {sign} * p.stock, {sign} * p.price * p.stock, "
        f"CASE WHEN {ABOVE} THEN {sign} ELSE 0 END, "
        f"CASE WHEN {LOW} THEN {sign} ELSE 0 END, "
        f"CASE WHEN {OUT} THEN {sign} ELSE 0 END"
    ).replace("p.", f"{row}.")
    return (
        f"INSERT INTO paint_totals ({COLUMNS}) "
        f"VALUES ({row}.brand, coalesce({row}.color_family, ''), {share});"
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
    # One writer at a time: every row up to this one is folded. (A trigger's own inserts
    # fire no triggers, recursive triggers being off.)
    "paint_totals_fold": (
        "AFTER INSERT ON paint_totals FOR EACH ROW WHEN abs(random() % 50) = 0",
        f"INSERT INTO paint_totals ({COLUMNS}) SELECT brand, color_family, {SUMS} "
        "FROM paint_totals WHERE id <= NEW.id GROUP BY brand, color_family "
        f"HAVING {NOT_ALL_ZERO}; DELETE FROM paint_totals WHERE id <= NEW.id;",
    ),
}


def upgrade():
    op.create_table(
        "paint_totals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
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
    if op.get_bind().dialect.name == "postgresql":
        # No paint may change between the count below and the triggers' first row.
        op.execute("LOCK TABLE paints IN SHARE MODE")
        op.execute(FOLD_PG)
        for name, body in FUNCTIONS_PG.items():
            # Without JIT: a plan kept from a bulk statement would otherwise compile its
            # expressions again (most of a second) for every one-paint write after it.
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql SET jit = off AS "
                f"$$ DECLARE added bigint; BEGIN {body} RETURN NULL; END $$"
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
        op.execute("DROP FUNCTION paint_totals_fold()")
    else:
        for name in TRIGGERS_SQLITE:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("paint_totals")
