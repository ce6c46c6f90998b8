"""``python -m worker`` and ``python -m api`` as their image runs them: they refuse to start,
with one clear line, rather than serve calls that can only fail."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from fake_provider import FakeProvider
from tests.databases import sqlite_at_head
from tests.polling import eventually
from worker.devserver import DevServer
from worker.health import main as health_main

PROCESSES = ("worker", "api")


def process_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """No ``RUNCAP_*`` from outside; an empty secrets dir; SQLite in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCAP_")}
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    env.update(
        RUNCAP_SECRETS_DIR=str(secrets),
        RUNCAP_DATABASE_URL=f"sqlite:///{tmp_path / 'runcap.db'}",
        **values,
    )
    return env


async def run_to_exit(module: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, env=env, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        _, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, err.decode()


@pytest.mark.parametrize("module", PROCESSES)
async def test_no_provider_is_a_clear_failure_at_start(module: str, tmp_path: Path) -> None:
    """With no provider key (an empty one counts as none), the process exits 2 saying what to
    set, instead of starting and failing every call with a 400."""
    sqlite_at_head(tmp_path / "runcap.db").dispose()
    env = process_env(tmp_path, RUNCAP_OPENAI_API_KEY="", RUNCAP_ANTHROPIC_API_KEY="")
    code, err = await run_to_exit(module, env)
    assert code == 2, err
    assert f"runcap {module}: no model provider is configured" in err
    assert "RUNCAP_OPENAI_API_KEY" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("module", PROCESSES)
async def test_an_unmigrated_database_is_a_clear_failure_at_start(
    module: str, tmp_path: Path
) -> None:
    """On a database the migrations have not run on, the process exits 2 naming the command,
    and creates no table itself."""
    env = process_env(tmp_path, RUNCAP_FAKE_PROVIDER_URL="http://127.0.0.1:9")
    code, err = await run_to_exit(module, env)
    assert code == 2, err
    assert "no runcap schema" in err
    assert "python -m db upgrade" in err
    assert "Traceback" not in err


async def test_worker_runs_without_admin_key_and_beats_while_alive(
    tmp_path: Path, dev_server: DevServer, fake: FakeProvider
) -> None:
    """The worker starts with no admin key, keeps its health file fresh while it runs, and the
    health check fails once it is killed."""
    sqlite_at_head(tmp_path / "runcap.db").dispose()
    health = tmp_path / "healthy"
    env = process_env(
        tmp_path,
        RUNCAP_FAKE_PROVIDER_URL=fake.base_url,
        RUNCAP_TEMPORAL_ADDRESS=dev_server.target,
        RUNCAP_TASK_QUEUE="health-test",
        RUNCAP_HEALTH_FILE=str(health),
    )
    assert "RUNCAP_ADMIN_KEY" not in env
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "worker", env=env)
    try:
        assert await eventually(lambda: health_main(["--file", str(health)]) == 0, within=60)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert health_main(["--file", str(health), "--max-age", "0"]) == 1
    assert health_main(["--file", str(tmp_path / "never")]) == 1
