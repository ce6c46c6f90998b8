"""A throwaway PostgreSQL server on 127.0.0.1, as a URL, for the tests and benchmarks.

Why a real server: the shared limits and the ledger rely on PostgreSQL's own locking and
conflict handling, which SQLite cannot stand in for. ``prodcheck.postgres.LocalPostgres`` does
the work (initdb + pg_ctl), the same class ``make prod-check`` uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prodcheck.postgres import LocalPostgres, pg_bindir

__all__ = ["pg_bindir", "throwaway_postgres"]
PG_USER = "runcap"


@contextmanager
def throwaway_postgres(bindir: Path | None = None, *, fsync: bool = False) -> Iterator[str]:
    """A fresh server and database, its url while the block runs; stopped and deleted after.

    Tests run it without fsync (nothing there needs to survive a power cut); a benchmark asks
    for fsync, as a production server has it. ``bindir`` is kept for callers that found one;
    ``pg_bindir()`` finds the same.
    """
    settings = {"fsync": "on" if fsync else "off"}
    with LocalPostgres(superuser=PG_USER, settings=settings) as server:
        server.psql(f"CREATE DATABASE {PG_USER}")
        yield server.url(PG_USER, PG_USER).render_as_string(hide_password=False)
