"""Child processes of the topology: started, awaited, killed and restarted by name.

Output goes to a log file per process (never to a pipe nobody drains), so a failure can show
the last lines of the part that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from worker.devserver import stop_process

READY_SECONDS = 120.0


class ChildFailed(RuntimeError):
    """A part of the topology did not start or a one-shot failed; the message has its log."""


class Child:
    """One long-running process (server, worker, api) that a test may kill and start again."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log = log_dir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, ready: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Start it, and wait until ``ready()`` is true (or fail with its log)."""
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        if ready is None:
            return
        try:
            async with asyncio.timeout(READY_SECONDS):
                while not await ready():
                    if not self.running:
                        raise ChildFailed(f"{self.name} exited early\n{self.tail()}")
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise ChildFailed(
                f"{self.name} not ready in {READY_SECONDS:.0f}s\n{self.tail()}"
            ) from None

    async def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no cleanup runs."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        if self.process is not None:
            await stop_process(self.process)

    def tail(self, limit: int = 4000) -> str:
        """The last characters of its log."""
        try:
            data = self.log.read_bytes()
        except FileNotFoundError:
            return ""
        return data[-limit:].decode(errors="replace")


ONE_SHOT_SECONDS = 300.0


async def run_once(name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> None:
    """A one-shot (schema, namespace, migrations): it must exit 0, as compose requires."""
    child = Child(name, argv, env, log_dir)
    await child.start()
    assert child.process is not None
    try:
        code = await asyncio.wait_for(child.process.wait(), ONE_SHOT_SECONDS)
    except TimeoutError:
        await child.kill()
        raise ChildFailed(
            f"{name} did not finish in {ONE_SHOT_SECONDS:.0f}s\n{child.tail()}"
        ) from None
    if code != 0:
        raise ChildFailed(f"{name} exited with code {code}\n{child.tail()}")
