"""The benchmark's stack, each part its own process as in production, all on 127.0.0.1.

Why processes: a fake provider or worker in the benchmark's own event loop would steal its time
and flatter (or smear) the figures. The dev server is the real Temporal CLI, in memory.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from worker.devserver import DevServer, stop_process

ADMIN_KEY = "rc-admin-bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_port(port: int, process: asyncio.subprocess.Process, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"a child exited with {process.returncode} before port {port}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError(f"nothing opened port {port} within {within} s")


@asynccontextmanager
async def child(
    argv: list[str], env: dict[str, str], port: int | None
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        if port is not None:
            await wait_port(port, process)
        yield process
    finally:
        await stop_process(process)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Stack:
    temporal: str
    fake_url: str
    api_url: str | None
    env: dict[str, str]
    pids: dict[str, int]
    """The worker's and the api's, to read their CPU time."""


@asynccontextmanager
async def stack(
    *, with_api: bool, data_dir: str, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Stack]:
    """Dev server, fake provider, worker, and (optionally) the api, ready to serve;
    ``extra_env`` goes to the worker and the api."""
    async with AsyncExitStack() as exits:
        server = await exits.enter_async_context(DevServer(ui=False))
        fake_port = free_port()
        fake_url = f"http://127.0.0.1:{fake_port}"
        env = {
            **os.environ,
            "RUNCAP_TEMPORAL_ADDRESS": server.target,
            "RUNCAP_FAKE_PROVIDER_URL": fake_url,
            "RUNCAP_DATABASE_URL": f"sqlite:///{data_dir}/bench.db",
            "RUNCAP_ADMIN_KEY": ADMIN_KEY,
            **(extra_env or {}),
        }
        fake_argv = [
            "-m",
            "fake_provider",
            "--port",
            str(fake_port),
            "--log-level",
            "warning",
        ]
        await exits.enter_async_context(child(fake_argv, env, fake_port))
        # The schema first, as in production: the worker and the api only check it.
        migrate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "db", "upgrade", env=env
        )
        if await migrate.wait() != 0:
            raise RuntimeError("python -m db upgrade failed")
        worker = await exits.enter_async_context(child(["-m", "worker"], env, None))
        pids = {"worker": worker.pid}
        api_url = None
        if with_api:
            api_port = free_port()
            env = {**env, "RUNCAP_API_PORT": str(api_port)}
            api = await exits.enter_async_context(child(["-m", "api"], env, api_port))
            pids["api"] = api.pid
            api_url = f"http://127.0.0.1:{api_port}"
        yield Stack(server.target, fake_url, api_url, env, pids)


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 in milliseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[94] * 1000, cuts[98] * 1000


async def timed(
    call: Callable[[], Awaitable[object]], *, concurrency: int, total: int
) -> tuple[list[float], float]:
    """Latencies of ``total`` calls made ``concurrency`` at a time, and the wall time."""
    latencies: list[float] = []
    queue = iter(range(total))

    async def lane() -> None:
        for _ in queue:
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return latencies, time.perf_counter() - began


def row(label: str, base: list[float], through: list[float]) -> str:
    """One table row: direct and through-runcap percentiles, and what runcap adds at each."""
    b, t = percentiles(base), percentiles(through)
    added = [t[i] - b[i] for i in range(3)]
    cells = [f"{v:7.1f}" for v in (*b, *t, *added)]
    return f"| {label:<24} | " + " | ".join(cells) + " |"


HEADER = (
    "| case                     | direct p50 | p95 | p99 | runcap p50 | p95 | p99 "
    "| added p50 | p95 | p99 |\n|---|---|---|---|---|---|---|---|---|---|"
)
