"""Schema migrations (Alembic): upgrade, check at start, and write the next revision.

Why migrations and not ``create_all`` at start: the worker and the api started together on an
empty PostgreSQL database raced to create the same tables (5 of 5 tries: a unique violation),
and a column added later never reached an existing table. Now one command upgrades the schema
(compose's ``migrate`` one-shot, ``make run``, the tests), the processes only check it, and a
PostgreSQL advisory lock makes concurrent upgrades take turns.

Adding a table or a column: change the models, then ``python -m db revision -m "what"`` writes
the next revision by comparing the models with a scratch database at head; review it, and give
the new table its privileges in ``db.grants``. The tests fail until both are done.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect, text
from sqlmodel import SQLModel

import db.journal_models
import db.models  # noqa: F401
from db.engine import make_engine
from db.grants import apply_grants

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ADVISORY_LOCK_ID = 0x72756E636170  # "runcap": one upgrader at a time per PostgreSQL database


class SchemaError(RuntimeError):
    """The database's schema is not the one this code needs; the message says what to run."""


def metadata() -> MetaData:
    """Every runcap table: what revisions are generated from and checked against."""
    return SQLModel.metadata


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration without an ini file; ``connection`` is the one to migrate."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head() -> str:
    """The revision this code needs (one head: parallel revisions must be rebased in order)."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise SchemaError(f"the migrations have {len(heads)} heads {heads}; renumber to one line")
    return heads[0]


def current(engine: Engine) -> str | None:
    """The database's revision; None when it was never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, roles: Mapping[str, str] | None = None) -> None:
    """Bring the schema to head, then grant ``roles`` (``{"api": role, ...}``) their privileges.

    One transaction under an advisory lock on PostgreSQL: a second upgrader waits, then finds
    the schema at head and does nothing.
    """
    postgres = engine.dialect.name == "postgresql"
    if roles and not postgres:
        raise SchemaError("database roles exist on PostgreSQL only")
    with engine.begin() as conn:
        if postgres:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
        _refuse_unversioned_tables(conn)
        command.upgrade(alembic_config(conn), "head")
        if roles:
            apply_grants(conn, roles)


def _refuse_unversioned_tables(conn: Connection) -> None:
    """Tables made before migrations (``create_all`` at start) have no revision to upgrade
    from: say so, rather than fail half-way on "table already exists"."""
    if MigrationContext.configure(conn).get_current_revision() is not None:
        return
    found = sorted(set(inspect(conn).get_table_names()) & set(metadata().tables))
    if found:
        raise SchemaError(
            f"the database has runcap tables ({', '.join(found)}) but no migration revision: "
            "it was made before migrations. Keep a copy, then start from an empty database "
            "(`make clean-data` for make run's), or move the data over by hand."
        )


def check_schema(engine: Engine) -> None:
    """Refuse to serve on a schema that is not at this code's head, with what to run."""
    need, have = head(), current(engine)
    if have == need:
        return
    fix = (
        "run the migrations first: `python -m db upgrade` "
        "(make run and docker compose's migrate service do this)"
    )
    if have is None:
        raise SchemaError(f"the database has no runcap schema; {fix}")
    script = ScriptDirectory.from_config(alembic_config())
    if have not in {revision.revision for revision in script.walk_revisions()}:
        raise SchemaError(
            f"the database schema is at revision {have}, unknown to this code "
            f"(which needs {need}): is this an older runcap on a newer database?"
        )
    raise SchemaError(f"the database schema is at revision {have}, this code needs {need}; {fix}")


def differences(engine: Engine) -> list[object]:
    """What the models have that the database lacks, or the reverse; empty when they agree."""
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata()))


def next_revision_id() -> str:
    """Revisions are numbered in order (0001, 0002, ...) so the files read as a history."""
    numbers = [
        int(match.group(1))
        for path in (MIGRATIONS_DIR / "versions").glob("*.py")
        if (match := re.match(r"(\d{4})_", path.name))
    ]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(message: str) -> Path:
    """Write the next revision: the models compared with a scratch SQLite database at head."""
    with tempfile.TemporaryDirectory(prefix="runcap-revision-") as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        try:
            upgrade(engine)
            with engine.begin() as conn:
                config = alembic_config(conn)
                # The new file passes the project's lint and format as written.
                config.set_section_option("post_write_hooks", "hooks", "fix, format")
                for name, options in (("fix", "check --fix --quiet"), ("format", "format -q")):
                    config.set_section_option("post_write_hooks", f"{name}.type", "module")
                    config.set_section_option("post_write_hooks", f"{name}.module", "ruff")
                    config.set_section_option(
                        "post_write_hooks", f"{name}.options", f"{options} REVISION_SCRIPT_FILENAME"
                    )
                script = command.revision(
                    config,
                    message=message,
                    autogenerate=True,
                    rev_id=next_revision_id(),
                )
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    head.cache_clear()
    return Path(script.path)
