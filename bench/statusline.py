"""``python -m bench statusline``: what Claude Code waits for each time it redraws runcap's line.

Claude Code runs its ``statusLine`` command on every change of its conversation (at most every
300 ms), so the command must answer well within its one-second deadline. Measured on a stack
of its own (one api, one worker, the dev server) with one run that has made calls:
- the endpoint alone (``GET /v1/runcap/run``: the run's live query, its ledger figures and its
  forecast), from this process over loopback, one request at a time;
- the whole command as Claude Code runs it (``runcap statusline`` with its JSON on stdin: a
  Python start, the request, the line), one at a time.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import httpx

from bench.harness import Stack, create_key, percentiles

CALLS = 20
REQUESTS = 300
COMMANDS = 30


async def run(stack: Stack) -> None:
    assert stack.api_url is not None
    task = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(timeout=60) as http:
        key = await create_key(http, stack)
        headers = {"Authorization": f"Bearer {key}", "x-runcap-tags": f"task:{task}"}
        body = {"model": "fake-small", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(CALLS):
            answer = await http.post(
                f"{stack.api_url}/v1/chat/completions", json=body, headers=headers
            )
            answer.raise_for_status()
        endpoint: list[float] = []
        for _ in range(REQUESTS):
            began = time.perf_counter()
            (await http.get(f"{stack.api_url}/v1/runcap/run", headers=headers)).raise_for_status()
            endpoint.append(time.perf_counter() - began)
    script = shutil.which("runcap", path=str(Path(sys.executable).parent))
    assert script, "the runcap script is not installed in this venv (pip install -e .)"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RUNCAP_", "ANTHROPIC_"))},
        "ANTHROPIC_BASE_URL": stack.api_url,
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_CUSTOM_HEADERS": f"x-runcap-tags: task:{task}",
    }
    stdin = json.dumps({"hook_event_name": "Status", "session_id": str(uuid.uuid4())}).encode()
    command: list[float] = []
    line = ""
    for _ in range(COMMANDS):
        began = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            script, "statusline", env=env, stdin=-1, stdout=-1, stderr=-1
        )
        out, _ = await process.communicate(stdin)
        command.append(time.perf_counter() - began)
        line = out.decode().strip()
    print("\n### runcap statusline (ms)\n")
    print("| what | p50 | p95 | p99 | n |\n|---|---|---|---|---|")
    for label, samples in (("GET /v1/runcap/run", endpoint), ("runcap statusline", command)):
        p50, p95, p99 = percentiles(samples)
        print(f"| {label} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {len(samples)} |")
    print(f"\nThe line: `{line}`")
