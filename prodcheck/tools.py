"""Temporal server and its schema tool, built once from the Go module proxy and cached.

The same version docker-compose.yml pins (tests/test_compose.py checks both). Built with
`go install` like the CLI (worker/temporal_cli.py): no container registry is needed, and the
module's own server config template and PostgreSQL schema come along from the module cache.
Cached under ``~/.cache/runcap/temporal-server/<version>``; a finished build leaves a stamp, so
the next run costs a stat. Measured on a shared 2-core machine, cold (empty Go caches): server
and tool together 2.5 to 4 minutes (169 s alone, 153-246 s after the CLI's build in CI).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from worker.temporal_cli import TemporalCliError, cache_dir, ensure_temporal_cli, find_go

TEMPORAL_SERVER_MODULE: Final = "go.temporal.io/server"
TEMPORAL_SERVER_VERSION: Final = "v1.29.1"
BINARIES: Final = {"server": "cmd/server", "temporal-sql-tool": "cmd/tools/sql"}
"""Installed name -> package in the module (`go install` names the tool `sql`)."""


@dataclass(frozen=True)
class ServerTools:
    """Where the built tools and the module's files are."""

    root: Path

    @property
    def bin(self) -> Path:
        """``server``, ``temporal-sql-tool`` and ``temporal`` (the CLI), for PATH."""
        return self.root / "bin"

    @property
    def server(self) -> Path:
        return self.bin / "server"

    @property
    def config_dir(self) -> Path:
        """The module's ``config/docker.yaml``: the template the server image renders from
        the same environment variables compose sets (DB, POSTGRES_SEEDS, ...)."""
        return self.root / "config"

    @property
    def schema_dir(self) -> Path:
        """The module's ``schema/postgresql/v12`` (the admin-tools image's SCHEMA_DIR)."""
        return self.root / "schema" / "postgresql" / "v12"


def tools_root() -> Path:
    return cache_dir() / "temporal-server" / TEMPORAL_SERVER_VERSION


def _stamp(root: Path) -> Path:
    return root / "built"


def find_server_tools() -> ServerTools | None:
    """The cached build, if it finished."""
    root = tools_root()
    stamp = _stamp(root)
    wanted = f"{TEMPORAL_SERVER_MODULE}@{TEMPORAL_SERVER_VERSION}"
    if stamp.is_file() and stamp.read_text().strip() == wanted:
        return ServerTools(root)
    return None


def _go_env(go: str, name: str) -> str:
    done = subprocess.run([go, "env", name], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _build(root: Path) -> None:
    go = find_go()
    if go is None:
        raise TemporalCliError(
            "Go is needed to build the Temporal server for make prod-check "
            f"(`go install {TEMPORAL_SERVER_MODULE}/cmd/server@{TEMPORAL_SERVER_VERSION}`)"
        )
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    packages = [
        f"{TEMPORAL_SERVER_MODULE}/{p}@{TEMPORAL_SERVER_VERSION}" for p in BINARIES.values()
    ]
    print(f"building {' '.join(packages)} (once)...", file=sys.stderr, flush=True)
    env = {**os.environ, "GOBIN": str(staging / "bin")}
    result = subprocess.run([go, "install", *packages], env=env, check=False)
    if result.returncode != 0:
        raise TemporalCliError(f"go install failed with exit code {result.returncode}")
    for name, package in BINARIES.items():
        built = staging / "bin" / Path(package).name
        if built.name != name:
            built.rename(staging / "bin" / name)
    (staging / "bin" / "temporal").symlink_to(ensure_temporal_cli())
    module = Path(_go_env(go, "GOMODCACHE")) / f"{TEMPORAL_SERVER_MODULE}@{TEMPORAL_SERVER_VERSION}"
    # Copied out of the read-only module cache, so `go clean -modcache` cannot take them away.
    (staging / "config").mkdir()
    shutil.copyfile(module / "config" / "docker.yaml", staging / "config" / "docker.yaml")
    shutil.copytree(
        module / "schema" / "postgresql" / "v12",
        staging / "schema" / "postgresql" / "v12",
        copy_function=shutil.copyfile,
    )
    _stamp(staging).write_text(f"{TEMPORAL_SERVER_MODULE}@{TEMPORAL_SERVER_VERSION}\n")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)


def ensure_server_tools() -> ServerTools:
    """The server, the schema tool, the CLI and the module's config and schema, built once."""
    if found := find_server_tools():
        return found
    root = tools_root()
    root.parent.mkdir(parents=True, exist_ok=True)
    # Parallel runs wait for one build instead of racing two.
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if found := find_server_tools():
            return found
        _build(root)
    found = find_server_tools()
    assert found is not None
    return found
