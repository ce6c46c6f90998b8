"""The real coding-agent CLIs the tests drive: Claude Code and Codex, from npm, pinned.

Installed once into runcap's cache (``~/.cache/runcap/npm/<package>@<version>``), like the
Temporal CLI, so a fresh ``make test`` pays for the download once and later runs pay nothing.
``python -m tests.agent_clis`` installs whatever is missing (``make test`` runs it first). A file
lock keeps two processes from installing the same package at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from worker.temporal_cli import cache_dir


@dataclass(frozen=True)
class AgentCli:
    package: str
    version: str
    binary: str

    @property
    def prefix(self) -> Path:
        return cache_dir() / "npm" / f"{self.package.replace('/', '+')}@{self.version}"

    @property
    def path(self) -> Path:
        return self.prefix / "node_modules" / ".bin" / self.binary


CLAUDE_CODE = AgentCli("@anthropic-ai/claude-code", "2.1.332", "claude")
CODEX = AgentCli("@openai/codex", "0.171.0", "codex")
ALL = (CLAUDE_CODE, CODEX)


class AgentCliError(RuntimeError):
    """A CLI could not be installed."""


def _installed(cli: AgentCli) -> bool:
    return cli.path.exists() and os.access(cli.path, os.X_OK)


def ensure(cli: AgentCli) -> Path:
    """The CLI's executable, installed with ``npm install --prefix`` when missing."""
    if _installed(cli):
        return cli.path
    npm = shutil.which("npm")
    if npm is None:
        raise AgentCliError(f"npm is needed to install {cli.package}; install Node.js")
    cli.prefix.mkdir(parents=True, exist_ok=True)
    with (cli.prefix.parent / f"{cli.prefix.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(cli):  # another process installed it while we waited
            return cli.path
        print(
            f"installing {cli.package}@{cli.version} into {cli.prefix} (once)...", file=sys.stderr
        )
        started = time.monotonic()
        command = [
            npm, "install", "--prefix", str(cli.prefix), "--no-audit", "--no-fund",
            "--no-save", "--loglevel=error", f"{cli.package}@{cli.version}",
        ]  # fmt: skip
        result = subprocess.run(command, check=False)
        if result.returncode != 0 or not _installed(cli):
            raise AgentCliError(f"`{' '.join(command)}` failed (exit {result.returncode})")
        print(f"installed {cli.package} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return cli.path


def main() -> None:
    for cli in ALL:
        print(ensure(cli))


if __name__ == "__main__":
    main()
