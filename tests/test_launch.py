"""`make run` (``python -m worker.launch``): migrations first, a private data dir, and a banner
that says where the admin key is without printing it."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

from db.engine import make_engine
from db.migrate import current, head, upgrade
from worker.devserver import free_port
from worker.launch import LaunchSettings, _banner, make_private

BANNER_END = "OpenAI(base_url="


def launch_env(data_dir: Path) -> dict[str, str]:
    """The environment of a launch on free ports, with no provider key (so the fake runs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCAP_")}
    env.update(
        RUNCAP_DATA_DIR=str(data_dir),
        RUNCAP_TEMPORAL_PORT=str(free_port()),
        RUNCAP_TEMPORAL_UI_PORT=str(free_port()),
        RUNCAP_API_PORT=str(free_port()),
        RUNCAP_FAKE_PROVIDER_PORT=str(free_port()),
        RUNCAP_OPENAI_API_KEY="",
    )
    return env


async def test_make_run_migrates_keeps_data_private_and_never_prints_the_admin_key(
    tmp_path: Path,
) -> None:
    """A whole launch: the schema is at head, every file in the data dir is the user's alone,
    and the banner points at the key file instead of showing the key."""
    data_dir = tmp_path / "data"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.launch",
        env=launch_env(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(120):
            while not any(BANNER_END in line for line in output):
                line = (await process.stdout.readline()).decode()
                assert line, "launcher exited early:\n" + "".join(output)
                output.append(line)
        key = (data_dir / "admin_key").read_text().strip()
        text = "".join(output)
        assert key.startswith("rc-admin-")
        assert key not in text
        assert f"saved in {data_dir / 'admin_key'}" in text
        assert "[migrate] database schema at" in text
        assert text.index("[migrate]") < text.index("starting worker")
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        files = [p for p in data_dir.rglob("*") if p.is_file()]
        assert {p.name for p in files} >= {"admin_key", "runcap.db", "temporal.db"}
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
        engine = make_engine(f"sqlite:///{data_dir / 'runcap.db'}")
        try:
            assert current(engine) == head()
        finally:
            engine.dispose()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            await process.communicate()
    assert process.returncode == 0


def test_banner_with_key_from_the_environment_names_the_variable() -> None:
    """A key given in RUNCAP_ADMIN_KEY is referred to by name, never shown."""

    class Server:
        ui_url = "http://127.0.0.1:8233"
        target = "127.0.0.1:7233"

    settings = LaunchSettings.model_validate({"admin_key": "rc-admin-secret-value"})
    text = _banner(settings, Server(), None)  # type: ignore[arg-type]
    assert "rc-admin-secret-value" not in text
    assert "from RUNCAP_ADMIN_KEY" in text
    assert 'Bearer $RUNCAP_ADMIN_KEY"' in text


def test_an_existing_data_dir_is_tightened(tmp_path: Path) -> None:
    """A data dir left world-readable by an older launcher is made 0700."""
    data_dir = tmp_path / "old"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    before = os.umask(0o022)
    try:
        make_private(data_dir)
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        (data_dir / "new").write_text("x")
        assert stat.S_IMODE((data_dir / "new").stat().st_mode) == 0o600
    finally:
        os.umask(before)


def test_a_new_sqlite_database_is_private_without_the_launcher(tmp_path: Path) -> None:
    """The api or the worker started on their own still create the database 0600 in a 0700
    directory, and SQLite's WAL files follow the database file's mode."""
    before = os.umask(0o022)
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'runcap.db'}")
    try:
        upgrade(engine)
        with engine.connect():  # open: the -wal and -shm files exist now
            files = list((tmp_path / "data").iterdir())
            assert {p.name for p in files} >= {"runcap.db", "runcap.db-wal", "runcap.db-shm"}
            for path in files:
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        engine.dispose()
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
