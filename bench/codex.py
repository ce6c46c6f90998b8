"""A Codex session through runcap, in the two ways users point Codex at it, timed end to end.

The real Codex CLI (the tests' pinned version, from npm) runs ``codex exec "say hello"`` against
the api: as its own OpenAI provider (``openai_base_url`` and ``codex login --with-api-key``,
which opens the Responses WebSocket first) and with runcap as a custom provider (HTTPS only).
Each session is a fresh Codex home. Before runcap served the WebSocket, a session of the first
kind took about 7 s: Codex tried the socket seven times and wrote eleven error lines first.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.harness import Stack, create_key
from tests.agent_clis import CODEX, ensure

SESSIONS = 5
MODEL = "gpt-5.6-terra"
"""A model Codex knows and genai-prices prices (the bench stack has no price overrides)."""
COMMON = 'check_for_update_on_startup = false\nmodel = "%s"\n[analytics]\nenabled = false\n'


async def _session(
    codex: Path, home: Path, config: str, key: str, login: bool
) -> tuple[float, int]:
    """One ``codex exec`` in a fresh home: its wall time and the error lines it wrote."""
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text(config)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "CODEX_HOME": str(home / ".codex"),
        "RUNCAP_KEY": key,
    }

    async def run(*args: str, stdin: bytes | None = None) -> bytes:
        # Nothing on stdin unless it is the key: Codex reads a piped stdin into its prompt.
        feed = asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE
        proc = await asyncio.create_subprocess_exec(
            str(codex), *args, cwd=home, env=env,
            stdin=feed, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate(stdin)
        if proc.returncode:
            raise RuntimeError(f"codex {args[0]} exited {proc.returncode}: {err.decode()[-500:]}")
        return err

    if login:
        await run("login", "--with-api-key", stdin=key.encode())
    began = time.perf_counter()
    err = await run("exec", "--skip-git-repo-check", "--sandbox", "read-only", "say hello")
    took = time.perf_counter() - began
    return took, sum("ERROR" in line for line in err.decode(errors="replace").splitlines())


async def run(stack: Stack) -> None:
    assert stack.api_url is not None
    codex = await asyncio.to_thread(ensure, CODEX)
    async with httpx.AsyncClient(timeout=30) as http:
        key = await create_key(http, stack)
    own = f'openai_base_url = "{stack.api_url}/v1"\n' + COMMON % MODEL
    custom = (
        'model_provider = "runcap"\n'
        + COMMON % MODEL
        + f'[model_providers.runcap]\nname = "runcap"\nbase_url = "{stack.api_url}/v1"\n'
        + 'env_key = "RUNCAP_KEY"\nwire_api = "responses"\n'
    )
    print(f"\n### A Codex {CODEX.version} session through runcap (`codex exec`, s)\n")
    print("| setup | median | max | error lines |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="runcap-bench-codex-") as tmp:
        for name, config, login in (
            ("own OpenAI provider (WebSocket)", own, True),
            ("custom provider (HTTPS)", custom, False),
        ):
            runs = [
                await _session(codex, Path(tmp) / f"{name[:3]}{i}", config, key, login)
                for i in range(SESSIONS)
            ]
            times = [t for t, _ in runs]
            errors = sum(e for _, e in runs)
            print(f"| {name} | {statistics.median(times):.2f} | {max(times):.2f} | {errors} |")
