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

from db.engine import make_engine
from db.grants import TABLE_PRIVILEGES
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
from prodcheck.postgres import LocalPostgres
from tests.waiting import eventually


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


def test_roles_get_only_their_privileges(postgres_server: LocalPostgres) -> None:
    """The api's and the worker's roles can do their work and nothing else; a password full of
    URL syntax (``a@b:/#%?``) works because it never goes into a URL."""
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
    row = (
        "INSERT INTO ledger (call_id, run_id, key_id, tags, requested_model, provider, model,"
        " status, attempts, input_tokens, output_tokens, cached_input_tokens,"
        " cache_write_tokens, latency_ms, error, cost_micros, reserved_micros, started_at)"
        " VALUES ('{id}', 'r', 'k', '[]', 'm', 'p', 'm', 'ok', '[]', 1, 1, 0, 0, 1, '', 5, 9,"
        " now()) ON CONFLICT (call_id) DO UPDATE SET cost_micros = excluded.cost_micros"
    )
    key = (
        "INSERT INTO virtual_keys (id, name, max_parallel, rpm, tpm, models, tags, key_hash,"
        " key_prefix, budget_micros, created_at) VALUES ('k1', 'n', 0, 0, 0, '[]', '[]',"
        " 'h', 'p', 1, now())"
    )
    try:
        check_schema(api)
        check_schema(worker)
        _exec(worker, row.format(id="w1"))
        _exec(worker, row.format(id="w1"))
        _exec(worker, "INSERT INTO ledger_tags (call_id, tag, prefix) VALUES ('w1', 'a:b', 'a')")
        _exec(worker, "DELETE FROM ledger_tags WHERE call_id = 'w1'")
        _exec(api, key)
        _exec(api, "UPDATE virtual_keys SET revoked_at = now() WHERE id = 'k1'")
        _exec(api, row.format(id="a1"))
        refused = [
            (worker, "SELECT * FROM virtual_keys"),
            (worker, "DELETE FROM ledger"),
            (worker, "CREATE TABLE mine (x int)"),
            (api, "DELETE FROM virtual_keys"),
            (api, "DELETE FROM ledger"),
            (api, "DROP TABLE ledger_tags"),
            (api, "UPDATE alembic_version SET version_num = 'x'"),
        ]
        for engine, sql in refused:
            with pytest.raises(Exception, match=r"permission denied|must be owner"):
                _exec(engine, sql)
    finally:
        for engine in (api, worker, owner):
            engine.dispose()
