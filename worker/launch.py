"""`make run`: the migrations, the dev server, the fake provider (without a real key), the
worker and the api.

Children run in their own sessions so a terminal Ctrl-C reaches only this launcher, which then
stops them in reverse start order. If any child dies, the rest are stopped and the launcher exits
non-zero naming it: a half-running gateway is worse than a clear failure.
Everything under the data dir (admin key, databases, logs) is private to the user: the dir is
0700 and the launcher's umask makes every file its children create 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from settings import RuncapSettings
from settings.temporal import dev_server_env
from worker.devserver import DevServer, TemporalCliError, stop_process

REPO_ROOT = Path(__file__).resolve().parent.parent
PORT_WAIT_SECONDS = 60.0
MIGRATE_SECONDS = 120.0
PRIVATE_UMASK = 0o077
PRIVATE_DIR = 0o700


class LaunchSettings(RuncapSettings):
    """What `make run` reads (prefix `RUNCAP_`); an empty value is unset, as everywhere."""

    data_dir: Path = Path(".runcap")
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    fake_provider_port: int = 9100
    admin_key: SecretStr | None = None


@dataclass
class Child:
    """One child process the launcher owns."""

    name: str
    argv: list[str]
    port: int | None = None  # wait until it accepts connections before going on
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)


def admin_key(settings: LaunchSettings) -> tuple[str, Path | None]:
    """The admin key from the environment, else the one saved in the data dir (made once)."""
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value(), None
    path = settings.data_dir / "admin_key"
    if path.exists():
        return path.read_text().strip(), path
    key = "rc-admin-" + secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created with 0600 from the start: no window in which another user could read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key, path


def uses_fake_provider(settings: LaunchSettings) -> bool:
    """True when no real provider key is configured."""
    return settings.openai_api_key is None and settings.anthropic_api_key is None


def database_url(settings: LaunchSettings) -> str:
    """The gateway database: `RUNCAP_DATABASE_URL` when set, else SQLite in the data dir."""
    if "database_url" in settings.model_fields_set:
        return settings.database_url
    return f"sqlite:///{settings.data_dir / 'runcap.db'}"


def make_private(data_dir: Path) -> None:
    """Create (or tighten) the data dir to 0700, and make what this process tree creates 0600."""
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    data_dir.chmod(PRIVATE_DIR)


def child_env(
    settings: LaunchSettings, temporal_address: str, key: str, temporal_ui: str | None = None
) -> dict[str, str]:
    """The environment every child gets: ours plus the addresses and secrets of this launch.
    Its children reach the dev server it started, in plaintext, whatever Temporal variables or
    profile our shell has (they may point at another cluster)."""
    env = {
        **dev_server_env(os.environ, temporal_address),
        "PYTHONUNBUFFERED": "1",
        "RUNCAP_DATABASE_URL": database_url(settings),
        "RUNCAP_ADMIN_KEY": key,
        "RUNCAP_API_HOST": settings.api_host,
        "RUNCAP_API_PORT": str(settings.api_port),
    }
    if temporal_ui:
        env["RUNCAP_TEMPORAL_UI_URL"] = temporal_ui  # the dashboard links each run there
    if not env.get("RUNCAP_DASHBOARD_URL"):  # alerts link to the run's page there
        env["RUNCAP_DASHBOARD_URL"] = f"http://{settings.api_host}:{settings.api_port}/ui"
    if uses_fake_provider(settings):
        env["RUNCAP_FAKE_PROVIDER_URL"] = f"http://127.0.0.1:{settings.fake_provider_port}"
    return env


def migrate_argv() -> list[str]:
    """The schema one-shot, the same command as docker-compose's `migrate` service."""
    return [sys.executable, "-m", "db", "upgrade"]


def plan_children(settings: LaunchSettings, root: Path = REPO_ROOT) -> list[Child]:
    """The Python children in start order; the api only once `api/__main__.py` exists."""
    python = sys.executable
    children = []
    if uses_fake_provider(settings):
        port = settings.fake_provider_port
        argv = [python, "-m", "fake_provider", "--port", str(port)]
        children.append(Child("fake-provider", argv, port=port))
    children.append(Child("worker", [python, "-m", "worker"]))
    if (root / "api" / "__main__.py").exists():
        children.append(Child("api", [python, "-m", "api"], port=settings.api_port))
    return children


async def _relay(name: str, stream: asyncio.StreamReader) -> None:
    """Copy a child's output to ours, each line prefixed with the child's name."""
    while line := await stream.readline():
        sys.stdout.write(f"[{name}] {line.decode(errors='replace')}")
        sys.stdout.flush()


async def _wait_port(child: Child) -> None:
    assert child.process is not None and child.port is not None
    try:
        async with asyncio.timeout(PORT_WAIT_SECONDS):
            while child.process.returncode is None:  # if it dies, the supervisor reports it
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", child.port)
                except OSError:
                    await asyncio.sleep(0.2)
                    continue
                writer.close()
                return
    except TimeoutError:
        raise RuntimeError(
            f"{child.name} did not open port {child.port} within {PORT_WAIT_SECONDS:.0f}s"
        ) from None


async def migrate(env: dict[str, str]) -> None:
    """Run the migrations to head before anything that uses the database starts."""
    process = await asyncio.create_subprocess_exec(
        *migrate_argv(),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), MIGRATE_SECONDS)
    except TimeoutError:
        await stop_process(process)
        raise RuntimeError(f"the migrations did not finish within {MIGRATE_SECONDS:.0f}s") from None
    for line in output.decode(errors="replace").splitlines():
        print(f"[migrate] {line}", flush=True)
    if process.returncode != 0:
        raise RuntimeError(f"the migrations failed (exit code {process.returncode})")


def _banner(settings: LaunchSettings, server: DevServer, key_file: Path | None) -> str:
    """What is running and how to use it; the admin key itself is never printed."""
    api = f"http://{settings.api_host}:{settings.api_port}"
    if key_file is not None:
        where, bearer = f"saved in {key_file}", f"$(cat {key_file})"
    else:
        where, bearer = "from RUNCAP_ADMIN_KEY", "$RUNCAP_ADMIN_KEY"
    provider = (
        f"fake provider at http://127.0.0.1:{settings.fake_provider_port} "
        "(set RUNCAP_OPENAI_API_KEY or RUNCAP_ANTHROPIC_API_KEY for real models)"
        if uses_fake_provider(settings)
        else "real provider keys from the environment"
    )
    return f"""
runcap is running. Ctrl-C stops everything.
  Dashboard    {api}/ui  (sign in with the admin key)
  Temporal UI  {server.ui_url}
  Temporal     {server.target}
  API          {api}
  Admin key    {where}
  Providers    {provider}
  Data         {settings.data_dir}

Create a virtual key, then point an agent at it:
  curl -s {api}/admin/keys -H "Authorization: Bearer {bearer}" \\
       -H 'content-type: application/json' -d '{{"name": "coding-agent", "budget_usd": 20}}'
  OpenAI(base_url="{api}/v1", api_key="<virtual key>")
"""


async def launch(settings: LaunchSettings) -> int:
    """Start everything, supervise until a signal or a child's death, stop everything."""
    make_private(settings.data_dir)
    key, key_file = admin_key(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    server = DevServer(
        db_file=settings.data_dir / "temporal.db",
        port=settings.temporal_port,
        ui_port=settings.temporal_ui_port,
        log_file=settings.data_dir / "temporal.log",
    )
    children = plan_children(settings)
    relays: list[asyncio.Task[None]] = []
    failure: str | None = None
    try:
        env = child_env(settings, server.target, key, server.ui_url)
        print("migrating the database: python -m db upgrade", flush=True)
        await migrate(env)
        print(f"starting the Temporal dev server on {server.target}...", flush=True)
        await server.start()
        watches = {asyncio.ensure_future(server.wait()): "temporal"}
        for child in children:
            print(f"starting {child.name}: {' '.join(child.argv[1:])}", flush=True)
            child.process = await asyncio.create_subprocess_exec(
                *child.argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            assert child.process.stdout is not None
            relays.append(asyncio.create_task(_relay(child.name, child.process.stdout)))
            watches[asyncio.ensure_future(child.process.wait())] = child.name
            if child.port is not None:
                await _wait_port(child)
            if child.process.returncode is not None:
                break
        else:
            print(_banner(settings, server, key_file), flush=True)
        stopping = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([stopping, *watches], return_when=asyncio.FIRST_COMPLETED)
        if died := [task for task in done if task in watches]:
            failure = f"{watches[died[0]]} exited with code {died[0].result()}"
        for task in [stopping, *watches]:
            task.cancel()
    except (TemporalCliError, RuntimeError, OSError) as error:
        failure = str(error)
    finally:
        print("stopping...", flush=True)
        for child in reversed(children):
            if child.process is not None:
                await stop_process(child.process)
        await server.stop()
        for relay in relays:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(relay, 1.0)
    if failure:
        print(f"runcap: {failure}; everything was stopped", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    """Entry point of `python -m worker.launch`."""
    return asyncio.run(launch(LaunchSettings.load()))


if __name__ == "__main__":
    sys.exit(main())
