"""``runcap statusline``: one line for Claude Code's ``statusLine`` setting, with the current
run's spent and budget, its burn rate and when its cap will be reached at that rate.

Claude Code runs the command on every update of its conversation (at most every 300 ms) with
the session as JSON on stdin (``session_id``, ``model``, ``workspace``, ``cost``...), and shows
the first line printed. The command finds the gateway and the virtual key where Claude Code
does (``ANTHROPIC_BASE_URL``, ``ANTHROPIC_AUTH_TOKEN`` or ``ANTHROPIC_API_KEY``; ``RUNCAP_*``
first), and asks ``GET /v1/runcap/run`` with the headers Claude Code's calls carry (its session
id and any ``x-runcap-tags`` in ``ANTHROPIC_CUSTOM_HEADERS``), so the gateway answers for the
run those calls land in. It waits a second at most, never prints the key, and on any
failure prints a short line and exits 0: a status line that errors goes blank.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from decimal import Decimal
from typing import IO, Any

import httpx

from cli.client import DEFAULT_API_URL

DEADLINE_SECONDS = 1.0
MAX_STDIN = 1 << 20
URL_VARS = ("RUNCAP_BASE_URL", "ANTHROPIC_BASE_URL", "RUNCAP_API_URL")
KEY_VARS = ("RUNCAP_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY")
SESSION_HEADER = "x-claude-code-session-id"
TAG_HEADER = "x-runcap-tags"
PREFIX = "runcap"
CENT = Decimal("0.01")
FALLBACKS = {
    401: f"{PREFIX}: key refused",
    404: f"{PREFIX}: no calls yet",
}


def gateway_of(env: Mapping[str, str]) -> str:
    """The gateway's root, from the first variable set (``/v1`` and slashes trimmed)."""
    url = next((env[v].strip() for v in URL_VARS if env.get(v, "").strip()), DEFAULT_API_URL)
    url = url.rstrip("/")
    return url.removesuffix("/v1")


def key_of(env: Mapping[str, str]) -> str | None:
    return next((env[v].strip() for v in KEY_VARS if env.get(v, "").strip()), None)


def tags_header(env: Mapping[str, str]) -> str | None:
    """``x-runcap-tags`` from ``ANTHROPIC_CUSTOM_HEADERS`` (``Name: value`` lines), if set."""
    for line in env.get("ANTHROPIC_CUSTOM_HEADERS", "").splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == TAG_HEADER:
            return value.strip()
    return None


def session_of(stdin: IO[str] | None) -> str | None:
    """The ``session_id`` of the JSON Claude Code passes, if any (not read from a terminal)."""
    if stdin is None or stdin.isatty():
        return None
    try:
        data = json.loads(stdin.read(MAX_STDIN) or "{}")
    except ValueError:
        return None
    session = data.get("session_id") if isinstance(data, dict) else None
    return session if isinstance(session, str) and session else None


def usd(text: str) -> str:
    """A USD string as ``$1.50``: at least cents, and every non-zero digit of the amount."""
    amount = Decimal(text)
    cents = amount.quantize(CENT)
    return f"${cents if cents == amount else amount.normalize():f}"


def duration(seconds: int) -> str:
    """``45s``, ``12m``, ``2h 15m`` or ``3d 4h``."""
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes}m"
    if days == 0:
        return f"{hours}h {minutes % 60}m"
    return f"{days}d {hours % 24}h"


def line_of(run: dict[str, Any]) -> str:
    """The status line of a run's JSON (``api.runs.run_view``)."""
    parts = [f"{PREFIX} {usd(run['spent_usd'])} of {usd(run['budget_usd'])}"]
    forecast = run.get("forecast") or {}
    rate = forecast.get("burn_usd_per_minute") or "0"
    if Decimal(rate) > 0:
        parts.append(f"{usd(rate)}/min")
        left = forecast.get("seconds_to_cap")
        if left is not None:
            parts.append(f"cap in {duration(left)}" if left > 0 else "at cap")
    else:
        parts.append("idle")
    if run.get("status") not in ("open", None):
        parts.append(str(run["status"]))
    return " · ".join(p for p in parts if p)


async def _get(url: str, headers: dict[str, str]) -> httpx.Response:
    """One GET, all of it (connecting included) within ``DEADLINE_SECONDS``."""
    async with httpx.AsyncClient(timeout=DEADLINE_SECONDS) as client:
        return await asyncio.wait_for(client.get(url, headers=headers), DEADLINE_SECONDS)


def status_line(stdin: IO[str] | None, env: Mapping[str, str]) -> str:
    """The line to print; never raises."""
    try:
        key = key_of(env)
        if key is None:
            return f"{PREFIX}: no key (set ANTHROPIC_AUTH_TOKEN or RUNCAP_KEY)"
        headers = {"authorization": f"Bearer {key}"}
        if session := session_of(stdin):
            headers[SESSION_HEADER] = session
        if tags := tags_header(env):
            headers[TAG_HEADER] = tags
        url = gateway_of(env) + "/v1/runcap/run"
        response = asyncio.run(_get(url, headers))
        if response.status_code != 200:
            return FALLBACKS.get(response.status_code, f"{PREFIX}: {response.status_code}")
        return line_of(response.json())
    except (httpx.TimeoutException, TimeoutError):
        return f"{PREFIX}: gateway slow"
    except httpx.HTTPError:
        return f"{PREFIX}: gateway unreachable"
    except Exception:  # a status line that raises goes blank: say so in one line instead
        return f"{PREFIX}: no figures"


def main() -> None:
    """Print the line for Claude Code; exit 0 whatever happened."""
    print(status_line(sys.stdin, os.environ), flush=True)
