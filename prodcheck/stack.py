"""The whole topology on 127.0.0.1, as docker-compose.yml runs it, with handles for faults.

``Stack.production()``: PostgreSQL (init script, roles, scram passwords full of URL syntax),
the Temporal server built from source on it, requiring mTLS with the certificates
deploy/make-secrets.sh makes (schema and namespace set up by the compose one-shots' own
scripts, the compose dynamic config), the migrations, then the worker and the api started as
their image starts them, connecting with the client certificate. ``Stack.dev()``: the same
worker and api on the plaintext dev server and SQLite (as ``make run``), for running the same
cases cheaply.

Tests kill and restart parts through ``kill_worker``, ``restart_temporal`` and the like.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import httpx
from sqlalchemy import URL, Engine
from temporalio.client import Client

from db.engine import make_engine
from fake_provider import FakeControl
from prodcheck import compose
from prodcheck.postgres import LocalPostgres
from prodcheck.processes import Child, run_once
from prodcheck.temporal import TemporalServer
from settings.temporal import TemporalTarget, dev_server_env, load_target
from worker.devserver import DevServer, free_port
from worker.health import is_fresh

Kind = Literal["production", "dev"]
ROUTES = {
    "routes": [
        {
            "model": "fallback",
            "chain": ["fake/fake-large", "fake/fake-small"],
            "first_byte_timeout_seconds": 2,
        },
        {"model": "alone", "chain": ["fake/fake-small"], "first_byte_timeout_seconds": 2},
    ]
}
"""The operator's routes file for the fault cases: a premium target that may fail or hang,
guarded by a short first-byte timeout, falling back to a cheap one; and the cheap one alone."""
PASSWORD_SYNTAX = "a@b:/#%?&="
"""Put into every generated password: URL syntax that broke the old DATABASE_URL."""


def _password() -> str:
    return PASSWORD_SYNTAX + secrets.token_urlsafe(18)


class Stack:
    """Every part of the topology, started in compose's order; an async context manager."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.root = Path(tempfile.mkdtemp(prefix=f"runcap-{kind}-"))
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.secret_files = self.root / "secrets" / "files"
        self.postgres: LocalPostgres | None = None
        self.temporal: TemporalServer | DevServer | None = None
        self.fake_url = ""
        self.fake: FakeControl | None = None
        self.fake_child: Child | None = None
        self.workers: list[Child] = []
        self.apis: list[Child] = []
        self.api_urls: list[str] = []
        self.timings: dict[str, float] = {}
        """Seconds each part took to start, for the log of make prod-check."""
        self._exits = AsyncExitStack()

    @classmethod
    def production(cls) -> Self:
        """PostgreSQL and the Temporal server (make prod-check)."""
        return cls("production")

    @classmethod
    def dev(cls) -> Self:
        """SQLite and the dev server (what make run starts)."""
        return cls("dev")

    # -- secrets, addresses, environments -------------------------------------------------

    async def _make_secrets(self) -> None:
        """Passwords full of URL syntax, then compose's own deploy/make-secrets.sh for the
        rest (it keeps files that exist): the admin key, empty optional files (the fake
        profile, no alerts), and Temporal's CA and certificates."""
        self.secret_files.mkdir(parents=True)
        for name in ("postgres_password", "temporal_db_password", "runcap_db_password",
                     "runcap_api_db_password", "runcap_worker_db_password"):  # fmt: skip
            (self.secret_files / name).write_text(_password())
        argv = ["/bin/sh", str(compose.MAKE_SECRETS), str(self.secret_files)]
        await run_once("make-secrets", argv, dict(os.environ), self.logs)
        (self.root / "routes.json").write_text(json.dumps(ROUTES))

    def secret(self, source: str) -> str:
        """The content of a secret file (as deploy/secrets holds it)."""
        return (self.secret_files / source).read_text()

    @property
    def admin_key(self) -> str:
        return self.secret("runcap_admin_key")

    def secrets_dir(self, service: str) -> Path:
        """What /run/secrets holds in ``service``'s container: its secrets, by target name."""
        directory = self.root / "secrets" / service
        if not directory.exists():
            directory.mkdir(parents=True)
            for item in compose.secrets(service):
                shutil.copyfile(self.secret_files / item.source, directory / item.target)
        return directory

    @property
    def temporal_address(self) -> str:
        assert self.temporal is not None
        return self.temporal.target

    def _hosts(self) -> dict[str, str]:
        hosts = {"fake-provider:9100": self._fake_host()}
        if self.temporal is not None:
            hosts["temporal:7233"] = self.temporal.target
        if self.postgres is not None:
            hosts["postgresql:5432"] = f"127.0.0.1:{self.postgres.port}"
        return hosts

    def _fake_host(self) -> str:
        return self.fake_url.removeprefix("http://")

    def service_env(self, service: str) -> dict[str, str]:
        """The process environment of any compose service: ours without RUNCAP_* and
        TEMPORAL_* (nor a Temporal profile from our home), then the compose file's, with
        hosts and /run/secrets mapped here, and its secrets dir."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCAP_", "TEMPORAL_"))}
        directory = self.secrets_dir(service)
        env = {**base, "TEMPORAL_CONFIG_FILE": os.devnull}
        env.update(compose.environment(service, self._hosts(), directory))
        env["RUNCAP_SECRETS_DIR"] = str(directory)
        return env

    def env(self, service: str, **extra: str) -> dict[str, str]:
        """The process environment of a runcap service (``service_env``), the fake provider,
        and ``extra``. On the dev stack: SQLite, and the plaintext dev server."""
        env = self.service_env(service)
        env["RUNCAP_FAKE_PROVIDER_URL"] = self.fake_url  # the fake profile, as its doc says
        env["PYTHONUNBUFFERED"] = "1"
        if self.kind == "dev":
            env["RUNCAP_DATABASE_URL"] = f"sqlite:///{self.root / 'runcap.db'}"
            if self.temporal is not None:
                env = dev_server_env(env, self.temporal.target)
        return {**env, **extra}

    # -- parts ------------------------------------------------------------------------------

    async def _start_postgres(self) -> None:
        command = compose.services()["postgresql"]["command"]
        settings = dict(arg.split("=", 1) for arg in command if "=" in arg)
        self.postgres = LocalPostgres(host_auth="scram-sha-256", settings=settings)
        self._exits.callback(self.postgres.remove)
        self.postgres.start()
        env = {"RUNCAP_SECRETS_DIR": str(self.secrets_dir("postgresql"))}
        self.postgres.run_script(compose.POSTGRES_INIT, env)

    async def _start_fake(self) -> None:
        port = free_port()
        argv = compose.command("fake-provider")
        argv[argv.index("--host") + 1] = "127.0.0.1"
        argv[argv.index("--port") + 1] = str(port)
        child = Child("fake-provider", argv, self.env("fake-provider"), self.logs)
        self.fake_child = child
        self.fake_url = f"http://127.0.0.1:{port}"
        self._exits.push_async_callback(child.stop)
        await child.start(lambda: _answers(f"{self.fake_url}/_control/calls"))
        self.fake = FakeControl(self.fake_url)
        self._exits.push_async_callback(self.fake.aclose)

    async def _start_temporal(self) -> None:
        if self.kind == "dev":
            server = DevServer(db_file=self.root / "temporal.db", ui=False)
            self.temporal = server
            self._exits.push_async_callback(server.stop)
            await server.start()
            return
        assert self.postgres is not None
        temporal = TemporalServer(self.postgres.port, self.service_env, self.secrets_dir, self.logs)
        self.temporal = temporal
        self._exits.push_async_callback(temporal.stop)
        await temporal.setup_schema()
        await temporal.start()
        await temporal.setup_namespace()

    async def migrate(self) -> None:
        """The migrate one-shot, with compose's command (no grants on SQLite)."""
        argv = compose.command("migrate")
        if self.kind == "dev":
            argv = argv[: argv.index("--grant")]
        await run_once("migrate", argv, self.env("migrate"), self.logs)

    async def start_worker(self) -> Child:
        """One more worker, ready once its health file is fresh (compose's health check)."""
        health = self.root / f"worker-{len(self.workers)}.health"
        env = self.env("worker", RUNCAP_HEALTH_FILE=str(health))
        child = Child(f"worker-{len(self.workers)}", compose.command("worker"), env, self.logs)
        self.workers.append(child)
        self._exits.push_async_callback(child.stop)
        await child.start(lambda: _fresh(health))
        return child

    async def start_api(self, **settings: str) -> str:
        """One more api instance; its base URL once ``/healthz`` answers (compose's check).
        ``settings``: more environment (``RUNCAP_*``) for this instance only."""
        port = free_port()
        env = self.env(
            "api",
            RUNCAP_API_HOST="127.0.0.1",
            RUNCAP_API_PORT=str(port),
            RUNCAP_ROUTES_FILE=str(self.root / "routes.json"),
            **settings,
        )
        child = Child(f"api-{len(self.apis)}", compose.command("api"), env, self.logs)
        url = f"http://127.0.0.1:{port}"
        self.apis.append(child)
        self.api_urls.append(url)
        self._exits.push_async_callback(child.stop)
        await child.start(lambda: _answers(f"{url}/healthz"))
        return url

    async def restart(self, child: Child) -> None:
        """Start a stopped or killed worker or api again, waiting until it is ready."""
        assert not child.running, f"{child.name} is still running"
        if child in self.workers:
            health = Path(child.env["RUNCAP_HEALTH_FILE"])
            await child.start(lambda: _fresh(health))
        else:
            url = self.api_urls[self.apis.index(child)]
            await child.start(lambda: _answers(f"{url}/healthz"))

    async def stop_temporal(self, *, kill: bool = True) -> None:
        """Stop Temporal: SIGKILL by default, as a crash would."""
        assert self.temporal is not None
        if isinstance(self.temporal, DevServer):
            await self.temporal.stop(grace=0 if kill else 10)
        else:
            await self.temporal.stop(kill=kill)

    async def start_temporal(self) -> None:
        """Start Temporal again on the same database and ports; return once it is healthy."""
        assert self.temporal is not None
        await self.temporal.start()

    async def restart_temporal(self, *, kill: bool = True) -> None:
        """Stop Temporal (SIGKILL by default) and start it again at once."""
        await self.stop_temporal(kill=kill)
        await self.start_temporal()

    def ledger_engine(self) -> Engine:
        """An engine on runcap's database as its owner, for checking the ledger."""
        if self.kind == "dev":
            return make_engine(f"sqlite:///{self.root / 'runcap.db'}")
        assert self.postgres is not None
        url: URL = self.postgres.url("runcap", "runcap", self.secret("runcap_db_password"))
        return make_engine(url)

    def temporal_target(self, service: str = "api") -> TemporalTarget:
        """Temporal as ``service`` reaches it (production: with the client certificate)."""
        return load_target(environ=self.env(service))

    async def client(self) -> Client:
        """A Temporal client on the topology's server, with the api's credentials."""
        return await self.temporal_target().connect()

    def describe(self) -> str:
        """Where each part listens, for a human."""
        lines = [f"runcap {self.kind} topology (logs in {self.logs})"]
        lines.append(f"  Temporal   {self.temporal_target()}")
        if self.postgres is not None:
            lines.append(
                f"  PostgreSQL 127.0.0.1:{self.postgres.port} (socket dir {self.postgres.root})"
            )
        lines += [f"  api        {url}" for url in self.api_urls]
        lines.append(f"  fake       {self.fake_url}")
        lines.append(f"  admin key  in {self.secret_files / 'runcap_admin_key'}")
        lines += [f"  started {name} in {took:.1f}s" for name, took in self.timings.items()]
        return "\n".join(lines)

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        phases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("fake provider", self._start_fake),
            ("temporal (schema, server, namespace)", self._start_temporal),
            ("migrations", self.migrate),
            ("worker", self.start_worker),
            ("api", self.start_api),
        ]
        if self.kind == "production":
            phases.insert(0, ("postgresql (initdb, roles)", self._start_postgres))
        try:
            await self._make_secrets()
            for name, phase in phases:
                started = time.monotonic()
                await phase()
                self.timings[name] = time.monotonic() - started
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._exits.aclose()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


async def _fresh(path: Path) -> bool:
    return is_fresh(path)


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            return (await http.get(url)).status_code == 200
    except httpx.HTTPError:
        return False
