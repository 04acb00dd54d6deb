"""Search that finds codes and fragments

PostgreSQL searched with full text, which splits "CIT-000099" and "dark-bone" into words
and so missed fragments of codes. Search now matches fragments of paints.search_text, the
folded text (lower case, no accents) that the database keeps, through a trigram index
(pg_trgm), which also finds the start of a word for terms of 1 or 2 characters.
Both extensions are "trusted" since PostgreSQL 13: the database's owner may create them.
On a big table this rewrites it once (about a minute per million paints).
SQLite gets the column as a virtual one; studio registers its studio_fold() on each
connection.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The old full-text document, for the downgrade.
SEARCH_DOCUMENT = (
    "to_tsvector('english'::regconfig, (((((COALESCE(name, ''::character varying)::text "
    "|| ' '::text) || COALESCE(brand, ''::character varying)::text) || ' '::text) "
    "|| COALESCE(color_code, ''::character varying)::text) || ' '::text) "
    "|| COALESCE(description, ''::text))"
)
SEARCH_TEXT = (
    "studio_fold(name || ' ' || brand || ' ' || coalesce(color_code, '') || ' ' "
    "|| coalesce(description, ''))"
)
CANNOT_CREATE = (
    "PostgreSQL refused to create the extension {name} ({error}). Ask the database's owner "
    "or a superuser to run `CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE EXTENSION IF NOT "
    "EXISTS unaccent;` in this database, then run `flask db upgrade` again."
)


def create_extension(bind, name):
    """Create the extension unless it exists; return the schema it lives in."""
    exists = sa.text(
        "SELECT nspname FROM pg_extension JOIN pg_namespace ON pg_namespace.oid = extnamespace"
        " WHERE extname = :name"
    )
    schema = bind.scalar(exists, {"name": name})
    if schema is None:
        try:
            with bind.begin_nested():
                bind.exec_driver_sql(f"CREATE EXTENSION IF NOT EXISTS {name}")
        except sa.exc.DBAPIError as exc:
            error = str(exc.orig).strip().splitlines()[0]
            raise RuntimeError(CANNOT_CREATE.format(name=name, error=error)) from None
        schema = bind.scalar(exists, {"name": name})
    return bind.dialect.identifier_preparer.quote_schema(schema)


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        # SQLite cannot add a stored column to a table; a virtual one is computed when read.
        op.add_column(
            "paints", sa.Column("search_text", sa.Text, sa.Computed(SEARCH_TEXT, persisted=False))
        )
        return
    trgm = create_extension(bind, "pg_trgm")
    unaccent = create_extension(bind, "unaccent")
    # unaccent() is only STABLE (it reads a dictionary found through search_path); naming
    # the dictionary and the function by schema makes the result fixed, so the wrapper
    # may be IMMUTABLE and indexed: the usual pattern for indexing unaccent.
    op.execute(
        f"""
        CREATE FUNCTION studio_fold(text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        AS $$ SELECT lower({unaccent}.unaccent('{unaccent}.unaccent'::regdictionary, $1)) $$
        """
    )
    op.execute("SET LOCAL maintenance_work_mem = '256MB'")
    op.drop_index("ix_paints_search", table_name="paints")
    op.add_column(
        "paints", sa.Column("search_text", sa.Text, sa.Computed(SEARCH_TEXT, persisted=True))
    )
    op.execute(
        f"CREATE INDEX ix_paints_search ON paints USING gin (search_text {trgm}.gin_trgm_ops)"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        # Not batch mode: copying the table would drop the old one, and with foreign keys on
        # that deletes every stock movement (ON DELETE CASCADE).
        op.execute("ALTER TABLE paints DROP COLUMN search_text")
        return
    op.drop_index("ix_paints_search", table_name="paints")
    op.drop_column("paints", "search_text")
    op.execute("DROP FUNCTION studio_fold(text)")
    # The extensions stay: other objects in the database may use them.
    op.create_index(
        "ix_paints_search", "paints", [sa.text(SEARCH_DOCUMENT)], postgresql_using="gin"
    )
