"""The benchmark's stack, each part its own process as in production, all on 127.0.0.1.

Why processes: a fake provider or worker in the benchmark's own event loop would steal its time
and flatter (or smear) the figures. The dev server is the real Temporal CLI, in memory. Every
child is stopped when the stack exits, however it exits (an error, Ctrl-C, SIGTERM); children
also get SIGTERM from the kernel should this process die without a chance to stop them.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from db.engine import make_engine
from db.migrate import upgrade
from db.models import MAX_BUDGET_USD
from settings.temporal import dev_server_env
from worker.devserver import DevServer, stop_process

ADMIN_KEY = "rc-admin-bench"
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the benchmark dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def wait_port(
    port: int, process: asyncio.subprocess.Process, log: Path, within: float = 60
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(
                f"a child exited with {process.returncode} before port {port}:\n{_tail(log)}"
            )
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError(f"nothing opened port {port} within {within} s:\n{_tail(log)}")


@asynccontextmanager
async def child(
    argv: list[str],
    env: dict[str, str],
    port: int | None,
    log: Path,
    *,
    cwd: Path | None = None,
    within: float = 60,
    pipes: bool = False,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``argv`` as a child process (output to ``log``), ready once ``port`` accepts; with
    ``pipes``, its stdin and stdout are pipes to talk to it (only stderr goes to ``log``)."""
    pipe = asyncio.subprocess.PIPE
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=cwd,
            stdin=pipe if pipes else asyncio.subprocess.DEVNULL,
            stdout=pipe if pipes else out,
            stderr=out,
            preexec_fn=_die_with_parent,
        )
    try:
        if port is not None:
            await wait_port(port, process, log, within)
        yield process
    finally:
        await stop_process(process)


def python_child(
    module: str, env: dict[str, str], port: int | None, log: Path, *args: str
) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    return child([sys.executable, "-m", module, *args], env, port, log)


@dataclass
class Stack:
    temporal: str
    fake_url: str
    api_url: str | None
    env: dict[str, str]
    data_dir: Path
    pids: dict[str, int] = field(default_factory=dict)
    """Process name (``temporal``, ``fake``, ``worker``, ``api``...) to its pid, for CPU."""
    admin_key: str = ADMIN_KEY


@asynccontextmanager
async def stack(
    *, with_api: bool, data_dir: str, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Stack]:
    """Dev server, fake provider, worker, and (optionally) the api, ready to serve;
    ``extra_env`` goes to the worker and the api."""
    logs = Path(data_dir)
    database = f"sqlite:///{data_dir}/bench.db"
    # The schema first, as `python -m db upgrade` does in production: the worker and the api
    # only check it.
    engine = make_engine(database)
    try:
        await asyncio.to_thread(upgrade, engine)
    finally:
        engine.dispose()
    async with AsyncExitStack() as exits:
        server = await exits.enter_async_context(DevServer(ui=False))
        assert server.pid is not None
        fake_port = free_port()
        fake_url = f"http://127.0.0.1:{fake_port}"
        env = {
            **dev_server_env(os.environ, server.target),
            "RUNCAP_FAKE_PROVIDER_URL": fake_url,
            "RUNCAP_DATABASE_URL": database,
            "RUNCAP_ADMIN_KEY": ADMIN_KEY,
        }
        fake_args = ("--port", str(fake_port), "--log-level", "warning")
        fake = await exits.enter_async_context(
            python_child("fake_provider", env, fake_port, logs / "fake.log", *fake_args)
        )
        env = {**env, **(extra_env or {})}
        worker = await exits.enter_async_context(
            python_child("worker", env, None, logs / "worker.log")
        )
        pids = {"temporal": server.pid, "fake": fake.pid, "worker": worker.pid}
        api_url = None
        if with_api:
            api_port = free_port()
            env = {**env, "RUNCAP_API_PORT": str(api_port)}
            api = await exits.enter_async_context(
                python_child("api", env, api_port, logs / "api.log")
            )
            pids["api"] = api.pid
            api_url = f"http://127.0.0.1:{api_port}"
        yield Stack(server.target, fake_url, api_url, env, logs, pids)


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


async def create_key(
    http: httpx.AsyncClient, stack: Stack, budget_usd: str = "100000", **fields: object
) -> str:
    """A fresh runcap key (so a fresh run) with budgets no benchmark comes near: per run, and
    per day (a key needs a bounded budget; the day's ``KeyBudget`` lends on every call's path,
    as in production). ``fields`` go into the key as they are (``loop_max_repeats``...)."""
    key: str = (await create_key_record(http, stack, budget_usd, **fields))["key"]
    return key


async def create_key_record(
    http: httpx.AsyncClient, stack: Stack, budget_usd: str = "100000", **fields: object
) -> dict[str, Any]:
    """``create_key``'s whole answer: the secret in ``key``, the key's ``id``."""
    assert stack.api_url is not None
    body = {
        "name": f"bench-{uuid.uuid4().hex[:6]}",
        "budget_usd_per_run": budget_usd,
        "budget_usd_per_day": str(MAX_BUDGET_USD),
        **fields,
    }
    admin = {"Authorization": f"Bearer {stack.admin_key}"}
    response = await http.post(f"{stack.api_url}/admin/keys", json=body, headers=admin)
    response.raise_for_status()
    record: dict[str, Any] = response.json()
    return record
