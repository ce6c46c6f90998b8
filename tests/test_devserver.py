"""The dev-server bootstrap: CLI lookup, start-up, search attributes, raised update limits."""

import asyncio
import itertools
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowUpdateStage
from temporalio.worker import Worker

from worker.devserver import (
    DYNAMIC_CONFIG,
    SEARCH_ATTRIBUTES,
    DevServer,
    TemporalCliError,
    cache_dir,
    ensure_temporal_cli,
    find_temporal_cli,
    start_dev_command,
)


@workflow.defn(sandboxed=False)  # a test fixture workflow, no business logic to protect
class HoldUpdates:
    """Keeps every update in flight until released, to count concurrent updates."""

    def __init__(self) -> None:
        self.released = False
        self.accepted = 0

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.released and workflow.all_handlers_finished())
        return self.accepted

    @workflow.update
    async def hold(self, n: int) -> int:
        self.accepted += 1
        await workflow.wait_condition(lambda: self.released)
        return n

    @workflow.signal
    def release(self) -> None:
        self.released = True


def test_cli_is_found_or_built() -> None:
    """ensure_temporal_cli returns an executable Temporal CLI that runs."""
    cli = ensure_temporal_cli()
    out = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("temporal version")


def test_explicit_cli_setting_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """RUNCAP_TEMPORAL_CLI is taken over PATH and the cache, and a bad value is an error."""
    fake = tmp_path / "temporal"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("RUNCAP_TEMPORAL_CLI", str(fake))
    assert find_temporal_cli() == fake
    monkeypatch.setenv("RUNCAP_TEMPORAL_CLI", str(tmp_path / "missing"))
    with pytest.raises(TemporalCliError):
        find_temporal_cli()


def test_cache_dir_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The cache is RUNCAP_CACHE_DIR, else XDG_CACHE_HOME/runcap."""
    monkeypatch.setenv("RUNCAP_CACHE_DIR", str(tmp_path / "a"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("RUNCAP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "runcap"


def test_command_carries_settings() -> None:
    """The start-dev command registers every search attribute and dynamic config value."""
    cmd = start_dev_command(Path("temporal"), port=1, ui_port=None, db_file=Path("x.db"))
    pairs = set(itertools.pairwise(cmd))
    for name, kind in SEARCH_ATTRIBUTES.items():
        assert ("--search-attribute", f"{name}={kind}") in pairs
    for key, number in DYNAMIC_CONFIG.items():
        assert ("--dynamic-config-value", f"{key}={number}") in pairs
    assert ("--sqlite-pragma", "journal_mode=wal") in pairs
    assert "--headless" in cmd


async def test_search_attributes_registered(temporal_client: Client) -> None:
    """The session server has all of runcap's search attributes with the expected types."""
    found = await temporal_client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    types = {
        "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
        "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    }
    expected = {name: types[kind] for name, kind in SEARCH_ATTRIBUTES.items()}
    assert {name: found.custom_attributes[name] for name in expected} == expected


async def test_update_burst_above_default_limit(temporal_client: Client, task_queue: str) -> None:
    """More than the server default of 10 updates can be in flight on one workflow."""
    burst = 25
    async with Worker(temporal_client, task_queue=task_queue, workflows=[HoldUpdates]):
        handle = await temporal_client.start_workflow(
            HoldUpdates.run,
            id=f"burst-{task_queue}",
            task_queue=task_queue,
            execution_timeout=timedelta(minutes=1),
        )
        updates = await asyncio.gather(
            *(
                handle.start_update(
                    HoldUpdates.hold, i, wait_for_stage=WorkflowUpdateStage.ACCEPTED
                )
                for i in range(burst)
            )
        )
        await handle.signal(HoldUpdates.release)
        assert sorted([await u.result() for u in updates]) == list(range(burst))
        assert await handle.result() == burst


async def test_file_backed_server_uses_wal(tmp_path: Path) -> None:
    """A db file gets the WAL pragma, and a second start on the same file works."""
    db_file = tmp_path / "temporal.db"
    for _ in range(2):
        async with DevServer(db_file=db_file, ui=False):
            pass
    with sqlite3.connect(db_file) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
