"""A throwaway PostgreSQL server from the machine's own binaries (initdb + pg_ctl in a temp dir).

Used by the tests (one server per session) and by ``make prod-check``, which also runs the
compose file's init script against it, so the roles are the ones production gets.
Why ``runuser``: PostgreSQL refuses to run as root, and CI runs as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from glob import glob
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from sqlalchemy import URL

from worker.devserver import free_port

Auth = Literal["trust", "scram-sha-256"]


def pg_bindir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    if explicit := os.environ.get("RUNCAP_PG_BIN"):
        return Path(explicit)
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "pg_ctl").exists():
        return Path(found).resolve().parent
    candidates = sorted(glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


class LocalPostgres:
    """One PostgreSQL server on 127.0.0.1; ``superuser`` connects over its socket without a
    password, TCP clients with ``host_auth`` (scram to prove passwords work as deployed)."""

    def __init__(
        self,
        *,
        superuser: str = "postgres",
        host_auth: Auth = "trust",
        settings: Mapping[str, str] | None = None,
        root: Path | None = None,
    ) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries missing: apt-get install postgresql")
        self.bindir = bindir
        self.superuser = superuser
        self.host_auth = host_auth
        self.settings = {"fsync": "off", **(settings or {})}
        self.root = root or Path(tempfile.mkdtemp(prefix="runcap-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        self._started = False

    def _run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        stdin: str = "",
        server: bool = False,
    ) -> str:
        # Only the server's own programs must run as postgres; clients connect as anyone.
        prefix = ["runuser", "-u", "postgres", "--"] if server and self._as_postgres else []
        done = subprocess.run(
            [*prefix, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **(env or {})},
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr or done.stdout}")
        return done.stdout

    def start(self) -> None:
        """initdb (first time only), then start the server and wait until it accepts."""
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        if not self.data.exists():
            self._run(
                str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.superuser,
                "--auth-local=trust", f"--auth-host={self.host_auth}", "-E", "UTF8",
                server=True,
            )  # fmt: skip
        options = [f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=127.0.0.1"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", " ".join(options),
            "-l", str(self.log), "-w", "start", server=True,
        )  # fmt: skip
        self._started = True

    @property
    def pid(self) -> int:
        """The postmaster's pid (its backends are its children), as it records it."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self, mode: Literal["fast", "immediate"] = "immediate") -> None:
        """Stop the server (its data stays until ``remove``)."""
        if self._started:
            self._started = False
            pg_ctl = str(self.bindir / "pg_ctl")
            self._run(pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop", server=True)

    def remove(self) -> None:
        """Stop, and delete the data directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the socket; returns psql's unaligned output."""
        return self._run(
            str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", str(self.root), "-p", str(self.port), "-U", self.superuser, "-d", database,
            stdin=sql,
        )  # fmt: skip

    def run_script(self, script: Path, env: Mapping[str, str], args: Sequence[str] = ()) -> str:
        """Run a shell script as the postgres image runs its init scripts: psql on PATH, the
        server on its socket (``PGHOST``/``PGPORT``), the superuser in ``POSTGRES_USER``."""
        path = f"{self.bindir}{os.pathsep}{os.environ.get('PATH', '')}"
        full_env = {
            "PATH": path,
            "PGHOST": str(self.root),
            "PGPORT": str(self.port),
            "POSTGRES_USER": self.superuser,
            "POSTGRES_DB": "postgres",
            **env,
        }
        return self._run("/bin/sh", str(script), *args, env=full_env)

    def url(self, user: str, database: str, password: str | None = None) -> URL:
        """A SQLAlchemy URL (psycopg) of ``database`` as ``user`` over TCP."""
        return URL.create(
            "postgresql+psycopg",
            username=user,
            password=password,
            host="127.0.0.1",
            port=self.port,
            database=database,
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()
