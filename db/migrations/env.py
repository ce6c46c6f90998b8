"""Alembic's entry: migrate the connection ``db.migrate`` hands over, against the models.

Run through ``db.migrate`` (``python -m db``), never through an ``alembic.ini``: it takes the
connection from ``config.attributes`` so the caller controls the transaction and the lock.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from db.migrate import metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `python -m db upgrade`, not the alembic command")
context.configure(
    connection=connection,
    target_metadata=metadata(),
    # SQLite cannot ALTER most things: batch mode copies the table instead.
    render_as_batch=True,
    compare_type=True,
    compare_server_default=True,
)
with context.begin_transaction():
    context.run_migrations()
