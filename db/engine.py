"""The database engine: SQLite by default (embedded), PostgreSQL in production.

Why the SQLite pragmas: the api reads keys while the worker's ledger activity writes, possibly
from two processes; WAL lets readers and one writer proceed together and the busy timeout turns
a brief lock into a wait instead of an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import db.models  # noqa: F401  (registers the tables on SQLModel.metadata)

DEFAULT_URL = "sqlite:///.runcap/runcap.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalise_url(url: str) -> str:
    """Pick the psycopg 3 driver for a bare ``postgresql://`` or ``postgres://`` url."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def make_engine(url: str = DEFAULT_URL, *, pre_ping: bool = True, pool_size: int = 10) -> Engine:
    """An engine for ``url``: SQLite (file created with its directory) or PostgreSQL (psycopg).

    ``pre_ping`` tests each PostgreSQL connection as it leaves the pool (a round trip, so a
    connection the server dropped never fails a request); an engine on the hot path whose
    statements are cheap to retry may go without.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, pool_pre_ping=pre_ping, pool_size=pool_size, max_overflow=2 * pool_size
    )


def create_tables(engine: Engine) -> None:
    """Create every missing table (idempotent; no migrations yet)."""
    SQLModel.metadata.create_all(engine)
