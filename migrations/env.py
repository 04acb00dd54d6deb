"""Alembic environment: runs inside the Flask app, on its engine and models."""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
# Keep the app's own loggers alive when the migration configures logging.
fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

db = current_app.extensions["migrate"].db
config.set_main_option(
    "sqlalchemy.url", db.engine.url.render_as_string(hide_password=False).replace("%", "%%")
)


def include_object_for(dialect_name):
    """Skip objects made for another database (e.g. the PostgreSQL trigram index)."""

    def include_object(obj, name, type_, reflected, compare_to):
        dialects = getattr(obj, "info", {}).get("dialects")
        return dialects is None or dialect_name in dialects

    return include_object


def run_migrations_offline():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=db.metadata,
        literal_binds=True,
        include_object=include_object_for(db.engine.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", process_revision_directives)
    with db.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=db.metadata,
            include_object=include_object_for(connection.dialect.name),
            **conf_args,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Building an index on a big table may take longer than studio lets a
                # request's statement run; a migration waits for its locks as long as needed.
                connection.exec_driver_sql(
                    "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0"
                )
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
