"""The real Codex CLI (0.171) compacting mid-turn through runcap, in both ways users point it at
runcap: as its own OpenAI provider (``openai_base_url`` and ``codex login --with-api-key``: the
Responses WebSocket and remote compaction v2) and as a custom provider (``model_provider =
"runcap"``: HTTPS, and Codex's own summary call); and Codex reading runcap's model catalog.

Each session reads a file with a scripted tool call (Codex's ``exec``), and a low
``model_auto_compact_token_limit`` with the fake's reported usage makes Codex compact right
after the tool ran, before it sends the tool's output back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from api.model_list import CODEX_INSTRUCTIONS
from providers.formats import compaction
from tests.agent_clis import CODEX, ensure
from tests.gateway.conftest import Gateway
from tests.gateway.test_agent_clis import run_cli
from tests.gateway.test_sdks import settled

MODEL = "gpt-6.2-sol"
"""Codex 0.171's default model, priced by the gateway fixture's overrides."""
READ_NOTES = "const r = await tools.exec_command({cmd: 'cat notes.txt'});\ntext(r.output);"
COMMON = """check_for_update_on_startup = false
model_auto_compact_token_limit = 10000

[analytics]
enabled = false
"""
ERROR_LINES = ("ERROR", "Reconnecting", "Falling back")


@pytest.fixture
async def project(home: Path, gateway: Gateway) -> Any:
    """A project with a secret in notes.txt, and the fake scripted to read it once with
    Codex's exec tool, reporting enough prompt tokens to pass the compaction limit."""
    secret = uuid.uuid4().hex
    path = home.parent / "project"
    path.mkdir()
    (path / "notes.txt").write_text(f"the password is {secret}\n")
    tool = {"name": "exec", "input": READ_NOTES, "times": 1}
    await gateway.fake.script(MODEL, tool_call=tool, prompt_tokens=20_000)
    yield path, secret
    await gateway.fake.reset()


def codex_home(home: Path, config: str) -> dict[str, str]:
    codex_dir = home / ".codex"
    codex_dir.mkdir()
    (codex_dir / "config.toml").write_text(config)
    return {"HOME": str(home), "CODEX_HOME": str(codex_dir)}


async def compaction_rows(gateway: Gateway, key_id: str) -> list[dict[str, Any]]:
    response = await gateway.admin.get(
        "/admin/spend", params={"group_by": "key", "tag": "request:compaction"}
    )
    return [r for r in response.json()["rows"] if r["group"] == key_id]


def inputs(seen: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [r["body"]["input"] for r in seen if isinstance(r["body"].get("input"), list)]


async def test_codex_as_its_own_openai_provider_compacts_mid_turn(
    gateway: Gateway, home: Path, project: tuple[Path, str]
) -> None:
    """openai_base_url and codex login --with-api-key: Codex opens the Responses WebSocket once
    (no retries, no fallback, no error line), reads the file, compacts with remote compaction v2
    through runcap (one compaction item, billed and tagged request:compaction), resumes from
    the summary and exits 0 with the secret it read."""
    path, secret = project
    codex = await asyncio.to_thread(ensure, CODEX)
    key = await gateway.create_key(budget_usd="20")
    env = codex_home(home, f'openai_base_url = "{gateway.base_url}/v1"\n{COMMON}')
    login = await run_cli([str(codex), "login", "--with-api-key"], path, env, key["key"].encode())
    assert login[0] == 0, login
    args = [str(codex), "exec", "--skip-git-repo-check", "--sandbox", "read-only", "notes?"]
    code, out, err = await run_cli(args, path, env)
    assert code == 0, f"stdout: {out}\nstderr: {err}"
    assert secret in out, "the summary carried the tool's output into the resumed turn"
    assert not [line for line in err.splitlines() if any(e in line for e in ERROR_LINES)], err
    mine = [h for h in gateway.heard if h["key"] == key["key"][:12]]
    sockets = [h for h in mine if h["type"] == "websocket"]
    assert len(sockets) == 1, mine
    assert sockets[0]["openai-beta"] == "responses_websockets=2026-02-06"
    assert not [h for h in mine if h["path"] == "/v1/responses" and h["type"] == "http"]
    sent = inputs(await gateway.fake.requests(MODEL))
    asked = [i for i in sent if i[-1] == {"type": compaction.TRIGGER}]
    assert len(asked) == 1 and secret in json.dumps(asked[0]), "v2 went to the Responses target"
    resumed = [i for i in sent if any(compaction.is_item(item) for item in i)]
    assert resumed and secret not in json.dumps(resumed[-1])
    [run] = (await gateway.admin.get("/admin/runs", params={"key_id": key["id"]})).json()["runs"]
    assert run["run_id"].startswith(f"{key['id']}@")  # Codex's session is its run
    await settled(gateway, run["run_id"], 3)
    [row] = await compaction_rows(gateway, key["id"])
    assert row["calls"] == 1 and float(row["cost_usd"]) > 0


async def test_codex_with_runcap_as_a_custom_provider_compacts_mid_turn(
    gateway: Gateway, home: Path, project: tuple[Path, str]
) -> None:
    """model_provider = "runcap" (the README's setup): HTTPS only, Codex compacts with its own
    summary call, which is billed to the task and tagged request:compaction; it exits 0."""
    path, secret = project
    codex = await asyncio.to_thread(ensure, CODEX)
    task = f"codex-{uuid.uuid4().hex[:8]}"
    key = await gateway.create_key(budget_usd="20")
    provider = f"""model_provider = "runcap"
{COMMON}
[model_providers.runcap]
name = "runcap"
base_url = "{gateway.base_url}/v1"
env_key = "RUNCAP_KEY"
wire_api = "responses"
http_headers = {{ "x-runcap-tags" = "task:{task}" }}
"""
    env = {**codex_home(home, provider), "RUNCAP_KEY": key["key"]}
    args = [str(codex), "exec", "--skip-git-repo-check", "--sandbox", "read-only", "notes?"]
    code, out, err = await run_cli(args, path, env)
    assert code == 0, f"stdout: {out}\nstderr: {err}"
    assert not [line for line in err.splitlines() if any(e in line for e in ERROR_LINES)], err
    mine = [h for h in gateway.heard if h["key"] == key["key"][:12]]
    assert not [h for h in mine if h["type"] == "websocket"]
    kinds = [
        json.loads(h["x-codex-turn-metadata"])["request_kind"]
        for h in mine
        if h["path"] == "/v1/responses"
    ]
    assert kinds.count("compaction") == 1, kinds
    sent = inputs(await gateway.fake.requests(MODEL))
    assert any(
        i[-1].get("type") == "custom_tool_call_output" or secret in json.dumps(i) for i in sent
    )
    assert await settled(gateway, f"{key['id']}.{task}", 3) > 0
    [row] = await compaction_rows(gateway, key["id"])
    assert row["calls"] == 1


async def test_codex_reads_runcaps_model_catalog(gateway: Gateway, home: Path) -> None:
    """With model_catalog_url and api_key_model_discovery, Codex asks GET /v1/models with its
    client_version and takes runcap's catalog: the key's usable models, nothing else."""
    codex = await asyncio.to_thread(ensure, CODEX)
    key = await gateway.create_key(models=["coder", MODEL, "fake-small"])
    provider = f"""model_provider = "runcap"
{COMMON}
[features]
api_key_model_discovery = true

[model_providers.runcap]
name = "runcap"
base_url = "{gateway.base_url}/v1"
model_catalog_url = "{gateway.base_url}/v1/models"
env_key = "RUNCAP_KEY"
wire_api = "responses"
"""
    env = {**codex_home(home, provider), "RUNCAP_KEY": key["key"]}
    code, out, err = await run_cli([str(codex), "debug", "models"], home, env)
    assert code == 0, err
    catalog = json.loads(out)["models"]
    assert [m["slug"] for m in catalog] == ["coder", MODEL, "fake-small"]
    assert {m["base_instructions"] for m in catalog} == {CODEX_INSTRUCTIONS}
    asked = [h for h in gateway.heard if h["key"] == key["key"][:12]]
    assert [(h["path"], h["query"]) for h in asked] == [("/v1/models", "client_version=0.171.0")]
