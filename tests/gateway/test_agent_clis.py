"""The real coding-agent CLIs, unchanged, against the running gateway and the fake provider.

Each runs non-interactively with its default model, a home directory of its own (no user
configuration leaks in) and a ``task:`` tag sent through the CLI's own header setting; its calls
must be billed to that tag in the ledger. Codex's own-provider setup, its compaction and its
model catalog are in ``test_codex_native``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.agent_clis import CLAUDE_CODE, CODEX, ensure
from tests.gateway.conftest import Gateway
from tests.gateway.test_sdks import settled
from workflows.contracts import MICROS_PER_USD

QUIET_CLAUDE = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}
"""No traffic but the model calls: this machine is offline, and tests never leave it."""
RUN_LIMIT = 240.0
"""A bound on a CLI run, so a hung CLI fails the test instead of stalling the suite."""


async def run_cli(
    args: list[str], cwd: Path, env: dict[str, str], stdin: bytes | None = None
) -> tuple[int, str, str]:
    """Run a CLI to its end with ``stdin`` (or nothing); its exit code, stdout and stderr."""
    base = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env={**base, **env},
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), RUN_LIMIT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def task_row(gateway: Gateway, task: str) -> dict[str, Any]:
    response = await gateway.admin.get(
        "/admin/spend", params={"group_by": "tag:task", "tag": f"task:{task}"}
    )
    [row] = response.json()["rows"]
    result: dict[str, Any] = row
    return result


async def test_claude_code_reads_a_file_through_runcap(gateway: Gateway, home: Path) -> None:
    """claude -p with its default model: the fake asks for the Read tool on a project file,
    Claude Code reads it and sends the content back, the answer quotes it; every call is billed
    to the task named in ANTHROPIC_CUSTOM_HEADERS."""
    claude = await asyncio.to_thread(ensure, CLAUDE_CODE)
    task, secret = f"cc-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    project = home.parent / "project"
    project.mkdir()
    notes = project / "notes.txt"
    notes.write_text(f"the password is {secret}\n")
    key = await gateway.create_key(budget_usd="20")
    await gateway.fake.script(
        "*", tool_call={"name": "Read", "arguments": {"file_path": str(notes)}}
    )
    env = {
        **QUIET_CLAUDE,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.base_url,
        "ANTHROPIC_API_KEY": key["key"],
        "ANTHROPIC_CUSTOM_HEADERS": f"x-runcap-tags: task:{task}",
    }
    try:
        code, out, err = await run_cli(
            [str(claude), "-p", "What does notes.txt say?"], project, env
        )
        seen = await gateway.fake.requests()
    finally:
        await gateway.fake.reset()
    assert code == 0, f"stdout: {out}\nstderr: {err}"
    assert secret in out
    assert any(secret in str(r["body"]["messages"][-1]) for r in seen), "no tool result came back"
    total = await settled(gateway, f"{key['id']}.{task}", 2)
    row = await task_row(gateway, task)
    assert row["calls"] >= 2 and Decimal(row["cost_usd"]) * MICROS_PER_USD == total > 0


async def test_codex_exec_through_runcap(gateway: Gateway, home: Path) -> None:
    """codex exec with its default model over wire_api = "responses": it exits 0 with the
    model's answer, billed to the task named in the provider's http_headers."""
    codex = await asyncio.to_thread(ensure, CODEX)
    task = f"codex-{uuid.uuid4().hex[:8]}"
    codex_home = home / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        f"""model_provider = "runcap"
check_for_update_on_startup = false

[analytics]
enabled = false

[model_providers.runcap]
name = "runcap"
base_url = "{gateway.base_url}/v1"
env_key = "RUNCAP_KEY"
wire_api = "responses"
http_headers = {{ "x-runcap-tags" = "task:{task}" }}
"""
    )
    project = home.parent / "project"
    project.mkdir()
    key = await gateway.create_key(budget_usd="20")
    env = {"HOME": str(home), "CODEX_HOME": str(codex_home), "RUNCAP_KEY": key["key"]}
    args = [str(codex), "exec", "--skip-git-repo-check", "--sandbox", "read-only", "say hello"]
    code, out, err = await run_cli(args, project, env)
    assert code == 0, f"stdout: {out}\nstderr: {err}"
    assert "echo: say hello" in out
    await settled(gateway, f"{key['id']}.{task}", 1)
    row = await task_row(gateway, task)
    assert row["calls"] >= 1 and Decimal(row["cost_usd"]) > 0


async def test_claude_code_discovers_its_models_from_runcap(gateway: Gateway, home: Path) -> None:
    """With CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1, Claude Code asks runcap for the key's
    models (GET /v1/models?limit=1000, anthropic-version, x-api-key), accepts Anthropic's shape
    and keeps for its model picker exactly the Claude models runcap listed."""
    claude = await asyncio.to_thread(ensure, CLAUDE_CODE)
    key = await gateway.create_key(budget_usd="20")
    project = home.parent / "project"
    project.mkdir()
    env = {
        **QUIET_CLAUDE,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.base_url,
        "ANTHROPIC_API_KEY": key["key"],
        "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1",
    }
    code, out, err = await run_cli([str(claude), "-p", "say hello"], project, env)
    assert code == 0, f"stdout: {out}\nstderr: {err}"
    [asked] = [
        h for h in gateway.heard if h["key"] == key["key"][:12] and h["path"] == "/v1/models"
    ]
    assert asked["query"] == "limit=1000" and asked["anthropic-version"] == "2023-06-01"
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        auth = {"x-api-key": key["key"], "anthropic-version": "2023-06-01"}
        listed = (await http.get("/v1/models?limit=1000", headers=auth)).json()["data"]
    claude_models = [m["id"] for m in listed if re.search("claude|anthropic", m["id"], re.I)]
    assert claude_models
    cached = json.loads((home / ".claude" / "cache" / "gateway-models.json").read_text())
    assert cached["baseUrl"] == gateway.base_url
    assert [m["id"] for m in cached["models"]] == claude_models
