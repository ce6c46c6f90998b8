"""Migrations: they build exactly the models' schema, upgrade safely in parallel, and the
processes refuse a database that is not at head."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlmodel import Session

from db.engine import make_engine
from db.grants import TABLE_PRIVILEGES
from db.ledger import recorded_calls, write_rows
from db.migrate import (
    MIGRATIONS_DIR,
    SchemaError,
    alembic_config,
    check_schema,
    current,
    differences,
    head,
    metadata,
    upgrade,
)
from db.models import VirtualKey
from prodcheck.postgres import LocalPostgres
from tests.polling import eventually
from workflows.contracts import LedgerRow, Usage


def fresh_database(server: LocalPostgres) -> str:
    """A new, empty database on the session's server; its URL as the superuser."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    server.psql(f"CREATE DATABASE {name}")
    return server.url(server.superuser, name).render_as_string(hide_password=False)


def test_one_line_of_revisions_numbered_in_order() -> None:
    """One head, and each file is named after its revision number (so parallel work collides
    loudly instead of branching silently)."""
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [head()]
    for revision in script.walk_revisions():
        assert revision.path is not None
        assert Path(revision.path).name.startswith(f"{revision.revision}_"), revision.path
    assert Path(MIGRATIONS_DIR / "versions").is_dir()


def test_every_table_has_its_privileges() -> None:
    """db.grants names every table the migrations create, so no new table is left ungranted."""
    assert set(TABLE_PRIVILEGES) == set(metadata().tables) | {"alembic_version"}


def test_migrations_build_the_models_schema_on_sqlite(tmp_path: Path) -> None:
    """On SQLite, upgrading an empty database gives exactly the models' tables and columns."""
    engine = make_engine(f"sqlite:///{tmp_path / 'runcap.db'}")
    try:
        upgrade(engine)
        assert current(engine) == head()
        assert differences(engine) == []
        upgrade(engine)  # a second run finds nothing to do
        assert current(engine) == head()
    finally:
        engine.dispose()


def test_migrations_build_the_models_schema_on_postgresql(postgres_server: LocalPostgres) -> None:
    """On PostgreSQL, likewise: alembic's comparison with the models finds nothing."""
    engine = make_engine(fresh_database(postgres_server))
    try:
        upgrade(engine)
        assert current(engine) == head()
        assert differences(engine) == []
    finally:
        engine.dispose()


# Each upgrader imports everything, says it is ready, then waits for the word: the upgrades
# themselves start within milliseconds of each other, where a race would show.
UPGRADER = """
import sys, time
from pathlib import Path
from db.__main__ import main
go = Path(sys.argv[1])
(go.parent / f"ready-{sys.argv[2]}").touch()
while not go.exists():
    time.sleep(0.001)
sys.exit(main(["upgrade"]))
"""


async def test_concurrent_upgrades_of_an_empty_postgresql_all_succeed(
    postgres_server: LocalPostgres, tmp_path: Path
) -> None:
    """Four `python -m db upgrade` let go at once on one empty database all exit 0 (before
    migrations, the worker and the api racing to create tables failed 5 times in 5)."""
    url = fresh_database(postgres_server)
    env = {**os.environ, "RUNCAP_DATABASE_URL": url}
    go = tmp_path / "go"
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            UPGRADER,
            str(go),
            str(n),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for n in range(4)
    ]
    assert await eventually(lambda: len(list(tmp_path.glob("ready-*"))) == 4, within=60)
    go.touch()
    results = await asyncio.gather(*(p.communicate() for p in processes))
    failures = [
        err.decode() for p, (_, err) in zip(processes, results, strict=True) if p.returncode
    ]
    assert failures == []
    engine = make_engine(url)
    try:
        assert current(engine) == head()
        assert differences(engine) == []
    finally:
        engine.dispose()


def test_schema_check_says_what_to_run(tmp_path: Path) -> None:
    """An empty, a behind and an unknown schema are each refused with what to do."""
    engine = make_engine(f"sqlite:///{tmp_path / 'runcap.db'}")
    try:
        with pytest.raises(SchemaError, match=r"no runcap schema.*python -m db upgrade"):
            check_schema(engine)
        upgrade(engine)
        check_schema(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaError, match="unknown to this code"):
            check_schema(engine)
    finally:
        engine.dispose()


def _exec(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql))


def ledger_row(call_id: str) -> LedgerRow:
    """A settled call as the api and the worker write it."""
    return LedgerRow(
        call_id=call_id,
        run_id="run",
        key_id="key",
        tags=["step:edit", "task:1"],
        requested_model="m",
        provider="fake",
        model="m",
        status="ok",
        attempts=[],
        usage=Usage(10, 5),
        cost_micros=5,
        reserved_micros=9,
        started_at="2026-11-28T00:00:00+00:00",
        latency_ms=1,
    )


def test_roles_get_only_their_privileges(postgres_server: LocalPostgres) -> None:
    """The api's and the worker's roles can do their work with the code that does it, and
    nothing else; a password full of URL syntax (``a@b:/#%?``) works because it never goes
    into a URL."""
    name = f"g_{uuid.uuid4().hex[:12]}"
    password = "a@b:/#%?&=" + uuid.uuid4().hex
    api_role, worker_role = f"{name}_api", f"{name}_worker"
    postgres_server.psql(
        f"CREATE DATABASE {name};"
        f"CREATE ROLE {api_role} LOGIN PASSWORD '{password}';"
        f"CREATE ROLE {worker_role} LOGIN PASSWORD '{password}';"
    )
    owner = make_engine(postgres_server.url(postgres_server.superuser, name))
    upgrade(owner, {"api": api_role, "worker": worker_role})
    upgrade(owner, {"api": api_role, "worker": worker_role})  # re-granting is idempotent
    api = make_engine(postgres_server.url(api_role, name, password))
    worker = make_engine(postgres_server.url(worker_role, name, password))
    try:
        check_schema(api)
        check_schema(worker)
        write_rows(worker, [ledger_row("w1")])
        write_rows(worker, [ledger_row("w1")])  # written again: an upsert, tags replaced
        assert [c.call_id for c in recorded_calls(worker, ["w1"])] == ["w1"]
        write_rows(api, [ledger_row("a1")])
        with Session(api) as session:
            session.add(
                VirtualKey(id="k1", name="n", key_hash="h", key_prefix="p", budget_per_run_micros=1)
            )
            session.commit()
        _exec(api, "UPDATE virtual_keys SET revoked_at = now() WHERE id = 'k1'")
        refused = [
            (worker, "SELECT * FROM virtual_keys"),
            (worker, "SELECT * FROM idempotent_requests"),
            (worker, "DELETE FROM ledger"),
            (worker, "CREATE TABLE mine (x int)"),
            (api, "DELETE FROM virtual_keys"),
            (api, "DELETE FROM ledger"),
            (api, "DELETE FROM alerts"),
            (api, "DROP TABLE ledger_tags"),
            (api, "UPDATE alembic_version SET version_num = 'x'"),
        ]
        for engine, sql in refused:
            with pytest.raises(Exception, match=r"permission denied|must be owner"):
                _exec(engine, sql)
    finally:
        for engine in (api, worker, owner):
            engine.dispose()


def test_a_database_made_before_migrations_is_refused_clearly(tmp_path: Path) -> None:
    """Tables from the old create_all at start, without a revision, are named and refused
    instead of failing half-way with "table already exists"."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        metadata().create_all(engine)
        with pytest.raises(SchemaError, match=r"made before migrations.*clean-data"):
            upgrade(engine)
    finally:
        engine.dispose()
