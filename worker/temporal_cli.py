"""The Temporal CLI: found on this machine, or built once from source and cached.

Built with `go install` (pinned) because a binary download is not possible everywhere; a file
lock keeps parallel `make` targets or test processes from building it twice.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

TEMPORAL_CLI_MODULE: Final = "github.com/temporalio/cli/cmd/temporal"
TEMPORAL_CLI_VERSION: Final = "v1.5.1"


class TemporalCliError(RuntimeError):
    """The Temporal CLI cannot be found, built, or started."""


def cache_dir() -> Path:
    """Where runcap keeps built tools: `$RUNCAP_CACHE_DIR`, `$XDG_CACHE_HOME/runcap`, `~/.cache`."""
    if explicit := os.environ.get("RUNCAP_CACHE_DIR"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "runcap"


def find_temporal_cli() -> Path | None:
    """Return the Temporal CLI from `RUNCAP_TEMPORAL_CLI`, PATH, or the cache; None if absent."""
    if explicit := os.environ.get("RUNCAP_TEMPORAL_CLI"):
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            # An explicit setting that points nowhere is a mistake to report, not to paper over.
            raise TemporalCliError(f"RUNCAP_TEMPORAL_CLI={explicit} is not an executable file")
        return path
    if on_path := shutil.which("temporal"):
        return Path(on_path)
    cached = cache_dir() / "bin" / "temporal"
    return cached if cached.is_file() and os.access(cached, os.X_OK) else None


def find_go() -> str | None:
    """The go command: on PATH, else where the official tarball puts it."""
    return shutil.which("go") or (
        "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None
    )


def ensure_temporal_cli() -> Path:
    """Return the Temporal CLI, building it once with `go install` (pinned) when it is missing."""
    if found := find_temporal_cli():
        return found
    bin_dir = cache_dir() / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    # A file lock: parallel `make` targets or test processes must not run two builds at once.
    with (bin_dir.parent / "temporal-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if found := find_temporal_cli():  # another process finished the build while we waited
            return found
        go = find_go()
        if go is None:
            raise TemporalCliError(
                "The Temporal CLI is not installed and Go is not available to build it. Install Go "
                f"(then `go install {TEMPORAL_CLI_MODULE}@{TEMPORAL_CLI_VERSION}`), put `temporal` "
                "on PATH, or set RUNCAP_TEMPORAL_CLI. Last resort where internet access exists: "
                "temporalio's `WorkflowEnvironment.start_local()` downloads a dev server."
            )
        print(
            f"building the Temporal CLI {TEMPORAL_CLI_VERSION} into {bin_dir} (once)...",
            file=sys.stderr,
        )
        env = {**os.environ, "GOBIN": str(bin_dir)}
        cmd = [go, "install", f"{TEMPORAL_CLI_MODULE}@{TEMPORAL_CLI_VERSION}"]
        result = subprocess.run(cmd, env=env, check=False)
        if result.returncode != 0:
            raise TemporalCliError(f"`{' '.join(cmd)}` failed with exit code {result.returncode}")
    built = bin_dir / "temporal"
    if not built.is_file():
        raise TemporalCliError(f"`go install` succeeded but {built} does not exist")
    return built
