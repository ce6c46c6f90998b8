"""GET /v1/models in each client's shape (OpenAI, Anthropic, Codex), listing only what the key
may use; and the probes agents send before their first call."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai

from api.model_list import CODEX_INSTRUCTIONS
from tests.gateway.conftest import Gateway

KEY_MODELS = ["coder", "claude-haiku-4-5", "fake-small", "no-such-model-anywhere"]
"""A route, two priced models, and a name nothing can serve or price (never listed)."""
USABLE = ["coder", "claude-haiku-4-5", "fake-small"]


async def get(gateway: Gateway, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        return await http.get(path, headers=headers)


async def test_anthropic_clients_get_anthropics_shape(gateway: Gateway) -> None:
    """The Anthropic SDK pages through the key's usable models in Anthropic's shape; Claude
    Code's own request (x-api-key, anthropic-version, limit=1000) gets them in one page."""
    key = await gateway.create_key(models=KEY_MODELS)
    async with anthropic.AsyncAnthropic(
        base_url=gateway.base_url, api_key=key["key"], max_retries=0
    ) as client:
        listed = [m async for m in client.models.list(limit=2)]
    assert [m.id for m in listed] == USABLE
    assert all(m.type == "model" and m.display_name == m.id for m in listed)
    claude_code = await get(
        gateway, "/v1/models?limit=1000", **{"x-api-key": key["key"], "anthropic-version": "x"}
    )
    page: dict[str, Any] = claude_code.json()
    assert [m["id"] for m in page["data"]] == USABLE
    assert page["has_more"] is False
    assert (page["first_id"], page["last_id"]) == ("coder", "fake-small")
    haiku = page["data"][1]
    assert set(haiku) >= {"type", "id", "display_name", "created_at"}
    assert haiku["description"].endswith("per Mtok, via runcap")


async def test_anthropic_pages_go_both_ways(gateway: Gateway) -> None:
    """after_id pages forward, before_id back; a page that is not the last says has_more."""
    key = await gateway.create_key(models=KEY_MODELS)
    auth = {"x-api-key": key["key"], "anthropic-version": "2023-06-01"}
    first = (await get(gateway, "/v1/models?limit=2", **auth)).json()
    assert [m["id"] for m in first["data"]] == USABLE[:2] and first["has_more"]
    back = (await get(gateway, "/v1/models?limit=1&before_id=fake-small", **auth)).json()
    assert [m["id"] for m in back["data"]] == ["claude-haiku-4-5"] and back["has_more"]
    bad = await get(gateway, "/v1/models?after_id=gpt-4.1", **auth)
    assert bad.status_code == 400 and "after_id" in bad.text


async def test_openai_clients_get_openais_shape(gateway: Gateway) -> None:
    """The OpenAI SDK gets OpenAI's list of the same usable models, with price sources."""
    key = await gateway.create_key(models=KEY_MODELS)
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=key["key"], max_retries=0
    ) as client:
        listed = [m async for m in client.models.list()]
    assert [m.id for m in listed] == USABLE
    assert all(m.object == "model" for m in listed)


async def test_codex_gets_its_model_catalog(gateway: Gateway) -> None:
    """Codex's form (client_version) gets its catalog: a slug and what Codex needs for each
    usable model, no freeform apply_patch, runcap's general prompt."""
    key = await gateway.create_key(models=KEY_MODELS)
    response = await get(
        gateway, "/v1/models?client_version=0.171.0", Authorization=f"Bearer {key['key']}"
    )
    models = response.json()["models"]
    assert [m["slug"] for m in models] == USABLE
    assert [m["priority"] for m in models] == [0, 1, 2]
    assert not [m for m in models if "apply_patch_tool_type" in m]
    assert {m["base_instructions"] for m in models} == {CODEX_INSTRUCTIONS}


async def test_a_key_without_a_list_gets_every_servable_model(gateway: Gateway) -> None:
    """With no list of its own, a key sees the named routes and every priced model."""
    key = await gateway.create_key()
    response = await get(gateway, "/v1/models", Authorization=f"Bearer {key['key']}")
    ids = [m["id"] for m in response.json()["data"]]
    assert ids[:3] == ["coder", "cross", "guarded"]
    assert {"fake-small", "gpt-6.2-sol", "claude-haiku-4-5"} <= set(ids)


async def test_probes_before_the_first_call(gateway: Gateway) -> None:
    """HEAD /api/hello (Claude Code's reachability probe) and HEAD / answer 200 without a key."""
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        for path in ("/api/hello", "/"):
            probed = await http.head(path)
            assert probed.status_code == 200, path
