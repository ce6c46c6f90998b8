"""Find or build the Temporal CLI and run `temporal server start-dev` for tests and `make run`.

The CLI is built from source (`go install`, pinned) because a binary download is not always
possible; the build happens once and is cached. The dev server gets the server settings runcap
depends on: its search attributes, and update limits far above the defaults (10 in-flight updates
per workflow, 2,000 per run), which a busy agent run exceeds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Final, Self

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from worker.temporal_cli import (
    TEMPORAL_CLI_MODULE,
    TEMPORAL_CLI_VERSION,
    TemporalCliError,
    cache_dir,
    ensure_temporal_cli,
    find_temporal_cli,
)

__all__ = [
    "DYNAMIC_CONFIG",
    "SEARCH_ATTRIBUTES",
    "TEMPORAL_CLI_MODULE",
    "TEMPORAL_CLI_VERSION",
    "DevServer",
    "TemporalCliError",
    "cache_dir",
    "ensure_temporal_cli",
    "find_temporal_cli",
    "stop_process",
]

# One list for the dev server, docker-compose and the workflows: type names as the CLI spells them.
SEARCH_ATTRIBUTES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "RunCost": "Double",
        "RunBudget": "Double",
        "RunCalls": "Int",
        "RunStatus": "Keyword",
        "AgentName": "Keyword",
        "TaskId": "Keyword",
        "RunTags": "KeywordList",
        "KeyId": "Keyword",
    }
)

# The defaults (10 in flight, 2,000 per run) are too low for a gateway run; compose uses the same.
DYNAMIC_CONFIG: Final[Mapping[str, int]] = MappingProxyType(
    {
        "history.maxInFlightUpdates": 1000,
        "history.maxTotalUpdates": 100000,
        # The transfer queue hands new workflow and activity tasks to matching; its default
        # poll budget (20/s) turns a steady stream of calls into one per ~100 ms after a short
        # burst (measured: 60 sequential activities took 5.1 s, 0.7 s with this raised).
        "history.transferProcessorMaxPollRPS": 10000,
        "history.transferProcessorMaxPollHostRPS": 10000,
    }
)

# WAL lets the UI and visibility queries read while history writes; normal sync is safe under WAL.
SQLITE_PRAGMAS: Final[Mapping[str, str]] = MappingProxyType(
    {"journal_mode": "wal", "synchronous": "normal"}
)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_dev_command(
    cli: Path,
    *,
    port: int,
    ui_port: int | None,
    db_file: Path | None,
    namespace: str = "default",
    extra_config: Mapping[str, int] | None = None,
) -> list[str]:
    """Build the `temporal server start-dev` argument list (ui_port None means headless)."""
    cmd = [str(cli), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port)]
    cmd += ["--headless"] if ui_port is None else ["--ui-port", str(ui_port)]
    if namespace != "default":
        cmd += ["--namespace", namespace]
    if db_file is not None:
        cmd += ["--db-filename", str(db_file)]
        for pragma, value in SQLITE_PRAGMAS.items():
            cmd += ["--sqlite-pragma", f"{pragma}={value}"]
    for name, kind in SEARCH_ATTRIBUTES.items():
        cmd += ["--search-attribute", f"{name}={kind}"]
    for key, number in {**DYNAMIC_CONFIG, **(extra_config or {})}.items():
        cmd += ["--dynamic-config-value", f"{key}={number}"]
    return [*cmd, "--log-level", "warn"]


async def stop_process(process: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: every child of ours stops the same way."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


class DevServer:
    """A `temporal server start-dev` child process; an async context manager that stops it."""

    def __init__(
        self,
        *,
        db_file: Path | None = None,
        port: int | None = None,
        ui_port: int | None = None,
        ui: bool = True,
        namespace: str = "default",
        log_file: Path | None = None,
        start_timeout: float = 60.0,
        extra_config: Mapping[str, int] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.ui_port = (ui_port or free_port()) if ui else None
        self.db_file = db_file
        self.namespace = namespace
        self.target = f"127.0.0.1:{self.port}"
        self.ui_url = f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None
        self.start_timeout = start_timeout
        self.extra_config = dict(extra_config or {})
        """More dynamic config; tests use it to make Temporal suggest continue-as-new early."""
        self._log_file = log_file
        self._log: IO[bytes] | None = None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id once started."""
        return self._process.pid if self._process else None

    async def start(self) -> None:
        """Spawn the server and return once its frontend answers with our search attributes."""
        if self._process is not None:
            return
        cli = await asyncio.to_thread(ensure_temporal_cli)
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = start_dev_command(
            cli,
            port=self.port,
            ui_port=self.ui_port,
            db_file=self.db_file,
            namespace=self.namespace,
            extra_config=self.extra_config,
        )
        # Output goes to a file, not a pipe nobody drains, so a chatty server can never block.
        if self._log_file is not None:
            self._log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._log_file.open("ab")
        else:
            self._log = tempfile.TemporaryFile(prefix="temporal-dev-")  # noqa: SIM115
        self._process = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,  # Ctrl-C in a terminal reaches our owner, who stops us in order
        )
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                raise TemporalCliError(
                    f"temporal dev server exited with code {self._process.returncode}:\n"
                    + self.log_tail()
                )
            try:
                client = await Client.connect(self.target, namespace=self.namespace)
                found = await client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace=self.namespace)
                )
                if set(SEARCH_ATTRIBUTES) <= set(found.custom_attributes):
                    return
            except Exception as error:  # not up yet: connection refused, namespace missing, ...
                last_error = error
            await asyncio.sleep(0.2)
        raise TemporalCliError(
            f"temporal dev server on {self.target} not ready after {self.start_timeout:.0f}s "
            f"(last error: {last_error}):\n{self.log_tail()}"
        )

    def log_tail(self, limit: int = 4000) -> str:
        """The last characters the server wrote, for error messages."""
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        with contextlib.suppress(OSError):
            self._log.seek(max(0, self._log.seek(0, os.SEEK_END) - limit))
            return self._log.read().decode(errors="replace")
        return ""

    async def wait(self) -> int:
        """Wait for the server process to exit on its own and return its exit code."""
        assert self._process is not None, "start() first"
        return await self._process.wait()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL after `grace` seconds."""
        process, self._process = self._process, None
        if process is not None:
            await stop_process(process, grace)
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def _serve(args: argparse.Namespace) -> None:
    async with DevServer(
        db_file=args.db_file, port=args.port, ui_port=args.ui_port, ui=not args.headless
    ) as server:
        ui = f", UI {server.ui_url}" if server.ui_url else ""
        print(f"temporal dev server at {server.target}{ui}", flush=True)
        await server.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m worker.devserver ensure` prints the CLI path; `start` runs a dev server."""
    parser = argparse.ArgumentParser(prog="python -m worker.devserver")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ensure", help="find or build the Temporal CLI and print its path")
    start = commands.add_parser("start", help="run a dev server in the foreground")
    start.add_argument("--db-file", type=Path)
    start.add_argument("--port", type=int, default=7233)
    start.add_argument("--ui-port", type=int, default=8233)
    start.add_argument("--headless", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "ensure":
            print(ensure_temporal_cli())
        else:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_serve(args))
    except TemporalCliError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
