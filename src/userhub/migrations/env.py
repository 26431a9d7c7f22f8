"""Alembic environment: runs inside the Flask app (``flask --app userhub db upgrade``)."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig

from alembic import context
from flask import current_app
from sqlalchemy import Connection

from userhub.database_errors import explained

config = context.config
# Keep the app's own loggers; configure console output only when nobody else has (the CLI).
if config.config_file_name and not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_db = current_app.extensions["migrate"].db
config.set_main_option(
    "sqlalchemy.url", target_db.engine.url.render_as_string(hide_password=False).replace("%", "%%")
)


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_db.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    conf_args = current_app.extensions["migrate"].configure_args
    with (
        explained(target_db.engine.url),
        target_db.engine.connect() as connection,
        sqlite_foreign_keys_off(connection),
    ):
        context.configure(connection=connection, target_metadata=target_db.metadata, **conf_args)
        with context.begin_transaction():
            context.run_migrations()
            check_foreign_keys(connection)


@contextmanager
def sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite changes a table by copying it and dropping the old one, and with foreign keys on
    (``database.py`` turns them on) that DROP deletes the rows that reference the table: every
    API token, session and mailed link of every user when ``user`` is rebuilt. So the
    migrations run with them off, as SQLite's own procedure for altering a table says, and on
    again after (the setting cannot change inside a transaction: hence out here)."""
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        yield
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def check_foreign_keys(connection: Connection) -> None:
    """With the checks off, nothing stopped a migration from leaving a dangling reference:
    refuse to finish if one did."""
    if connection.dialect.name != "sqlite":
        return
    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if dangling:
        raise RuntimeError(f"the migration left rows that reference nothing: {dangling[:10]}")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
