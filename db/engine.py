"""The database engine: SQLite by default (embedded), PostgreSQL in production.

Why the SQLite pragmas: the api reads keys while the worker's ledger activity writes, possibly
from two processes; WAL lets readers and one writer proceed together and the busy timeout turns
a brief lock into a wait instead of an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.engine import make_url

from settings import DEFAULT_DATABASE_URL, RuncapSettings

DEFAULT_URL = DEFAULT_DATABASE_URL
SQLITE_BUSY_TIMEOUT_MS = 10_000
DATA_DIR_MODE = 0o700
DATA_FILE_MODE = 0o600


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


def database_url(url: str, password: SecretStr | None = None) -> URL:
    """``url`` with its driver picked and ``password`` set as given: no escaping needed.

    Why a separate password: a raw password in a URL breaks on ``@``, ``/``, ``#`` or ``%``.
    """
    parsed = make_url(normalise_url(url))
    if password is not None and parsed.get_backend_name() != "sqlite":  # SQLite has none
        parsed = parsed.set(password=password.get_secret_value())
    return parsed


def make_engine(
    url: str | URL = DEFAULT_URL,
    *,
    pre_ping: bool = True,
    pool_size: int = 10,
    max_overflow: int | None = None,
) -> Engine:
    """An engine for ``url``: SQLite (file created with its directory) or PostgreSQL (psycopg).

    ``pre_ping`` tests each PostgreSQL connection as it leaves the pool (a round trip, so a
    connection the server dropped never fails a request); an engine on the hot path whose
    statements are cheap to retry may go without. ``max_overflow`` defaults to twice the pool.
    """
    parsed = url if isinstance(url, URL) else database_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            # Keys and the ledger live here: private to the owner, like the launcher's data dir.
            # SQLite gives its -wal and -shm files the database file's mode.
            path = Path(database).expanduser()
            path.parent.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
            path.touch(mode=DATA_FILE_MODE, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        parsed,
        pool_pre_ping=pre_ping,
        pool_size=pool_size,
        max_overflow=2 * pool_size if max_overflow is None else max_overflow,
    )


def engine_from(settings: RuncapSettings) -> Engine:
    """The engine a process's settings describe: url, password and pool bounds."""
    return make_engine(
        database_url(settings.database_url, settings.database_password),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
