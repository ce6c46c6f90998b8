"""The Temporal server on PostgreSQL, as the compose services set it up and run it.

The schema and the namespace come from the compose one-shots' scripts (deploy/temporal/), run
with the tools built at the pinned version; the server renders the module's own
``config/docker.yaml`` template from the compose service's environment, with the compose
dynamic config file as is. So it requires mTLS as compose's does, with the certificates
deploy/make-secrets.sh made. Every port is a free one, so parallel runs do not collide.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable
from pathlib import Path

from temporalio.client import Client

from prodcheck import compose
from prodcheck.processes import Child, run_once
from prodcheck.tools import ensure_server_tools
from settings.temporal import load_target

ServiceEnv = Callable[[str], dict[str, str]]
"""A compose service's environment here: hosts and /run/secrets mapped to this machine."""

PORT_SETTINGS = (
    "FRONTEND_GRPC_PORT",
    "FRONTEND_HTTP_PORT",
    "FRONTEND_MEMBERSHIP_PORT",
    "MATCHING_GRPC_PORT",
    "MATCHING_MEMBERSHIP_PORT",
    "HISTORY_GRPC_PORT",
    "HISTORY_MEMBERSHIP_PORT",
    "WORKER_GRPC_PORT",
    "WORKER_MEMBERSHIP_PORT",
)


def free_low_port() -> int:
    """A free port below 32768: Temporal stores membership ports in a PostgreSQL smallint,
    so the usual ephemeral range (above it) cannot be used."""
    while True:
        port = random.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class TemporalServer:
    """``server --env docker start`` on the topology's PostgreSQL."""

    def __init__(
        self,
        postgres_port: int,
        service_env: ServiceEnv,
        secrets_dir: Callable[[str], Path],
        logs: Path,
    ) -> None:
        self.tools = ensure_server_tools()
        self.postgres_port = postgres_port
        self.service_env = service_env
        self.secrets_dir = secrets_dir
        self.logs = logs
        self.ports = {name: free_low_port() for name in PORT_SETTINGS}
        self.target = f"127.0.0.1:{self.ports['FRONTEND_GRPC_PORT']}"
        self.child: Child | None = None
        self._client: Client | None = None

    def _path(self) -> str:
        return f"{self.tools.bin}{os.pathsep}{os.environ.get('PATH', '')}"

    def server_env(self) -> dict[str, str]:
        """The compose service's environment (its TLS files included), pointed at this
        machine's PostgreSQL and ports, and the password its entrypoint reads from the file."""
        env = self.service_env("temporal")
        password = (self.secrets_dir("temporal") / "temporal_db_password").read_text()
        env.update(
            POSTGRES_SEEDS="127.0.0.1",
            DB_PORT=str(self.postgres_port),
            VISIBILITY_DB_PORT=str(self.postgres_port),  # the template reads it apart
            POSTGRES_PWD=password,
            DYNAMIC_CONFIG_FILE_PATH=str(compose.DYNAMIC_CONFIG),
            BIND_ON_IP="127.0.0.1",
            **{name: str(port) for name, port in self.ports.items()},
        )
        return env

    async def setup_schema(self) -> None:
        """The temporal-schema one-shot's script, with the schema tool built at our version."""
        env = {
            **self.service_env("temporal-schema"),
            "POSTGRES_SEEDS": "127.0.0.1",
            "DB_PORT": str(self.postgres_port),
            "SCHEMA_DIR": str(self.tools.schema_dir),
            "RUNCAP_SECRETS_DIR": str(self.secrets_dir("temporal-schema")),
            "PATH": self._path(),
        }
        await run_once("temporal-schema", ["/bin/sh", str(compose.TEMPORAL_SCHEMA)], env, self.logs)

    async def setup_namespace(self) -> None:
        """The temporal-setup one-shot's script: namespace, then search attributes, with
        the CLI connecting as compose's admin-tools do (its client certificate)."""
        env = {**self.service_env("temporal-setup"), "PATH": self._path()}
        await run_once(
            "temporal-setup", ["/bin/sh", str(compose.TEMPORAL_NAMESPACE)], env, self.logs
        )

    async def _healthy(self) -> bool:
        # compose's health check is `temporal operator cluster health`: the same gRPC call,
        # with the admin-tools' certificate.
        try:
            if self._client is None:
                target = load_target(environ=self.service_env("temporal-setup"))
                self._client = await target.connect()
            return await self._client.service_client.check_health()
        except Exception:  # not up yet
            return False

    async def start(self) -> None:
        """Start the server and wait until its frontend reports healthy."""
        argv = [
            str(self.tools.server), "--root", str(self.tools.root), "--config", "config",
            "--env", "docker", "start",
        ]  # fmt: skip
        if self.child is None:
            self.child = Child("temporal", argv, self.server_env(), self.logs)
        self._client = None
        await self.child.start(self._healthy)

    async def stop(self, *, kill: bool = False) -> None:
        """SIGTERM then SIGKILL after a grace period; or SIGKILL at once (``kill``)."""
        if self.child is not None:
            await (self.child.kill() if kill else self.child.stop())
