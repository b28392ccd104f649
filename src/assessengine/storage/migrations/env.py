"""Alembic's entry for the store's migrations: run on the connection that `storage.migrate`
hands over in ``config.attributes["connection"]``, inside the caller's transaction (the
migrations never connect by themselves and never read a configuration file)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
