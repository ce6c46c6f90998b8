"""Codex's remote compaction over HTTPS through the running gateway: v2 (the trigger in
``/v1/responses``) and ``/v1/responses/compact``, for Responses and chat-completions targets,
billed and tagged ``request:compaction``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from providers.formats import compaction
from tests.gateway.conftest import Gateway
from tests.gateway.test_sdks import settled

SECRET = "the password is swordfish"
HISTORY: list[dict[str, Any]] = [
    {"type": "message", "role": "user", "content": "what does notes.txt say?"},
    {"type": "function_call", "call_id": "c1", "name": "read", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c1", "output": SECRET},
]
TRIGGER = {"type": compaction.TRIGGER}
RESPONSES_MODEL = "gpt-5.6-terra"
"""Served by the fake's Responses API, which compacts itself as OpenAI's does."""
CHAT_MODEL = "coder"
"""Routed to the fake's chat completions, which cannot: runcap asks it for the summary."""


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    key = await gateway.create_key(budget_usd="5")
    auth = {"Authorization": f"Bearer {key['key']}"}
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=auth, timeout=30) as http:
        http.headers["x-test-key-id"] = key["id"]
        yield http
    await gateway.fake.reset()


async def compaction_calls(
    gateway: Gateway, key_id: str, calls: int, run_id: str = ""
) -> list[dict[str, Any]]:
    """The key's spend tagged request:compaction (a row, or none), once ``calls`` of its run
    (the key's own unless named) settled."""
    await settled(gateway, run_id or key_id, calls)
    response = await gateway.admin.get(
        "/admin/spend", params={"group_by": "key", "tag": "request:compaction"}
    )
    return [r for r in response.json()["rows"] if r["group"] == key_id]


async def sse(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in response.text.split("\n") if line.startswith("data:")]


async def test_v2_for_a_chat_target_gets_one_item_with_the_models_summary(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    """Unstreamed and streamed, the answer is exactly one compaction item carrying what the
    model wrote when asked for a summary; both calls are billed and tagged request:compaction."""
    await gateway.fake.script("fake-large", reply=f"SUMMARY: {SECRET}")
    body = {"model": CHAT_MODEL, "input": [*HISTORY, TRIGGER]}
    whole = await client.post("/v1/responses", json=body)
    assert whole.status_code == 200, whole.text
    [item] = whole.json()["output"]
    assert compaction.summary_of(item) == f"SUMMARY: {SECRET}"
    assert float(whole.headers["x-runcap-cost-usd"]) > 0
    streamed = await client.post("/v1/responses", json={**body, "stream": True})
    events = await sse(streamed)
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [compaction.summary_of(i) for i in done] == [f"SUMMARY: {SECRET}"]
    assert events[-1]["type"] == "response.completed"
    assert not [e for e in events if e["type"] == "response.output_text.delta"]
    for asked in await gateway.fake.requests("fake-large"):
        assert SECRET in json.dumps(asked["body"]["messages"])
        assert compaction.PROMPT in json.dumps(asked["body"]["messages"][-1])
    key_id = client.headers["x-test-key-id"]
    [row] = await compaction_calls(gateway, key_id, 2)
    assert row["calls"] == 2 and float(row["cost_usd"]) > 0


async def test_runcaps_item_comes_back_for_any_target(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    """The item runcap wrote, sent back in place of the history, reaches a chat target and a
    Responses target as the summary in plain words."""
    item = compaction.item(f"SUMMARY: {SECRET}", "cmp_1")
    resumed = [HISTORY[0], item, {"type": "message", "role": "user", "content": "go on"}]
    for model in (CHAT_MODEL, RESPONSES_MODEL):
        answer = await client.post("/v1/responses", json={"model": model, "input": resumed})
        assert answer.status_code == 200, answer.text
    [chat] = await gateway.fake.requests("fake-large")
    [responses] = await gateway.fake.requests(RESPONSES_MODEL)
    assert SECRET in json.dumps(chat["body"]["messages"])
    assert responses["body"]["input"][1] == compaction.handoff_message(f"SUMMARY: {SECRET}")


async def test_v2_passes_through_to_a_responses_target(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    """A Responses target compacts itself: the trigger reaches it as sent and its own opaque
    item comes back; that item can go back to it, but a chat target refuses it with why."""
    body = {"model": RESPONSES_MODEL, "input": [*HISTORY, TRIGGER]}
    answer = await client.post("/v1/responses", json=body)
    [item] = answer.json()["output"]
    assert item["type"] == "compaction" and compaction.summary_of(item) is None
    [asked] = await gateway.fake.requests(RESPONSES_MODEL)
    assert asked["body"]["input"][-1] == TRIGGER
    again = await client.post(
        "/v1/responses", json={"model": RESPONSES_MODEL, "input": [HISTORY[0], item]}
    )
    assert SECRET in again.json()["output"][0]["content"][0]["text"]
    refused = await client.post(
        "/v1/responses", json={"model": CHAT_MODEL, "input": [HISTORY[0], item]}
    )
    assert refused.status_code == 400 and "encrypted for it" in refused.text


@pytest.mark.parametrize("model", [CHAT_MODEL, RESPONSES_MODEL])
async def test_compact_endpoint_returns_user_messages_and_one_item(
    gateway: Gateway, client: httpx.AsyncClient, model: str
) -> None:
    """POST /v1/responses/compact (Codex before v2): the history's user messages, then one
    compaction item, from either kind of target; billed and tagged request:compaction."""
    await gateway.fake.script("fake-large", reply=f"SUMMARY: {SECRET}")
    answer = await client.post(
        "/v1/responses/compact",
        json={"model": model, "input": HISTORY, "instructions": "You are Codex."},
    )
    assert answer.status_code == 200, answer.text
    compacted = answer.json()
    assert compacted["object"] == "response.compaction"
    *kept, item = compacted["output"]
    assert kept == [HISTORY[0]] and compaction.is_item(item)
    assert float(answer.headers["x-runcap-cost-usd"]) > 0
    [row] = await compaction_calls(gateway, client.headers["x-test-key-id"], 1)
    assert row["calls"] == 1


async def test_codex_own_summary_call_is_tagged(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    """Codex with a custom provider compacts with a plain call whose turn metadata says
    request_kind "compaction": it is tagged request:compaction too."""
    meta = json.dumps({"session_id": "s", "request_kind": "compaction"})
    body = {"model": RESPONSES_MODEL, "input": "summarise"}
    answer = await client.post("/v1/responses", json=body, headers={"x-codex-turn-metadata": meta})
    assert answer.status_code == 200
    key_id = client.headers["x-test-key-id"]
    [row] = await compaction_calls(gateway, key_id, 1, run_id=f"{key_id}@s")  # its session's run
    assert row["calls"] == 1
