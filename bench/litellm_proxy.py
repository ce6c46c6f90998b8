"""LiteLLM's proxy, the gateway runcap is compared with, on the same fake provider.

It lives in a venv of the benchmark's own, installed from PyPI the first time the comparison
runs and cached (``make test`` never installs it). The proxy gets a master key, no database,
the model's prices (runcap's own, so both bill a call alike) and the fake as its provider.
It is kept off the network: the model cost map is the copy in the package
(``LITELLM_LOCAL_MODEL_COST_MAP``; checked with strace for 1.108.7: the only connections it
makes at start and per call are to 127.0.0.1). Its logging is set to errors, like runcap's
api, which runs without an access log.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import yaml

from bench.harness import child, free_port
from providers.pricing import PriceBook
from worker.devserver import cache_dir

VERSION = "1.108.7"
MASTER_KEY = "sk-bench-master"
MODEL = "fake-small"
MICROS_PER_TOKEN_PER_USD = Decimal(10) ** 12
"""runcap prices are micro-dollars per million tokens; LiteLLM's are USD per token."""
START_WITHIN = 180.0
"""Seconds the proxy may take to start: it imports a great deal (about 20 s measured here)."""


def venv_dir() -> Path:
    return cache_dir() / "bench-litellm-venv"


def ensure_installed() -> Path:
    """The venv's ``litellm`` command, installing LiteLLM's proxy once (pinned)."""
    venv = venv_dir()
    stamp = venv / f".installed-{VERSION}"
    command = venv / "bin" / "litellm"
    if stamp.exists() and command.exists():
        return command
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / "bench-litellm.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another benchmark may be installing it right now
        if stamp.exists() and command.exists():
            return command
        print(f"installing litellm[proxy]=={VERSION} into {venv} (once)", flush=True)
        python = venv / "bin" / "python"
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, f"litellm[proxy]=={VERSION}"], check=True)
        stamp.touch()
    return command


def per_token(micros_per_mtok: int) -> float:
    # LiteLLM's config takes floats; this is the bench's only float of money, and only for it.
    return float(Decimal(micros_per_mtok) / MICROS_PER_TOKEN_PER_USD)


def config(fake_url: str, prices: PriceBook) -> dict[str, object]:
    price = prices.price_of(MODEL)
    return {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": f"{fake_url}/v1",
                    "api_key": "fake-key",
                },
                "model_info": {
                    "input_cost_per_token": per_token(price.input),
                    "output_cost_per_token": per_token(price.output),
                    "cache_read_input_token_cost": per_token(price.cached_input),
                    "cache_creation_input_token_cost": per_token(price.cache_write),
                },
            }
        ],
        "general_settings": {"master_key": MASTER_KEY},
        "litellm_settings": {"set_verbose": False},
    }


def proxy_env(work: Path) -> dict[str, str]:
    """A small environment: no provider keys or runcap settings of ours leak into it."""
    kept = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    return {
        **kept,
        "HOME": str(work),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "PYTHONUNBUFFERED": "1",
    }


def prepare(fake_url: str, work: Path) -> tuple[Path, Path]:
    """The ``litellm`` command (installed if need be) and its config file, written."""
    command = ensure_installed()
    work.mkdir(parents=True, exist_ok=True)
    path = work / "litellm-config.yaml"
    path.write_text(yaml.safe_dump(config(fake_url, PriceBook())))
    return command, path


@dataclass
class Proxy:
    url: str
    pid: int
    headers: dict[str, str]


@asynccontextmanager
async def litellm_proxy(fake_url: str, work: Path) -> AsyncIterator[Proxy]:
    """LiteLLM's proxy on a free port, in front of ``fake_url``; stopped on exit."""
    command, path = await asyncio.to_thread(prepare, fake_url, work)
    port = free_port()
    argv = [str(command), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1", "--keepalive_timeout", "75"]
    log = work / "litellm.log"
    async with child(argv, proxy_env(work), port, log, cwd=work, within=START_WITHIN) as process:
        yield Proxy(
            f"http://127.0.0.1:{port}", process.pid, {"Authorization": f"Bearer {MASTER_KEY}"}
        )
