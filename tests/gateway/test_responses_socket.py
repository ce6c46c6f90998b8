"""The Responses WebSocket transport as Codex drives it, with a real WebSocket client against the
running gateway: prewarm, follow-ups by previous_response_id, refusals as error frames, billing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from providers.formats import compaction
from tests.gateway.conftest import Gateway, settled_spend
from tests.gateway.test_sdks import settled
from tests.polling import eventually

READ = {
    "type": "function",
    "name": "read_file",
    "description": "Read a file",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
}
MODEL = "gpt-5.6-terra"


@asynccontextmanager
async def socket(gateway: Gateway, secret: str, **headers: str) -> AsyncIterator[ClientConnection]:
    url = gateway.base_url.replace("http://", "ws://") + "/v1/responses"
    auth = {"Authorization": f"Bearer {secret}", **headers}
    async with connect(url, additional_headers=auth, proxy=None, max_size=None) as ws:
        yield ws


async def create(ws: ClientConnection, **body: Any) -> list[dict[str, Any]]:
    """Send one response.create; the events up to its end (or its error frame)."""
    await ws.send(json.dumps({"type": "response.create", "model": MODEL, **body}))
    events: list[dict[str, Any]] = []
    while True:
        event = json.loads(await ws.recv())
        events.append(event)
        if event["type"] in ("response.completed", "response.incomplete", "error"):
            return events


def done_items(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["item"] for e in events if e["type"] == "response.output_item.done"]


@pytest.fixture
async def fake_reset(gateway: Gateway) -> AsyncIterator[None]:
    yield
    await gateway.fake.reset()


@pytest.mark.usefixtures("fake_reset")
async def test_socket_serves_a_tool_round_trip_like_codex(gateway: Gateway) -> None:
    """Prewarm, a call that asks for a tool, and a follow-up that sends only the tool's output
    with previous_response_id: the provider gets the whole conversation, each real call is billed
    to the task of the handshake's tags, and the prewarm costs nothing."""
    task = f"ws-{uuid.uuid4().hex[:8]}"
    key = await gateway.create_key(budget_usd="5")
    await gateway.fake.script(MODEL, tool_call={"name": "read_file", "arguments": {"path": "a"}})
    async with socket(gateway, key["key"], **{"x-runcap-tags": f"task:{task}"}) as ws:
        warm = await create(ws, input=[], generate=False, tools=[READ], stream=True)
        assert [e["type"] for e in warm] == ["response.created", "response.completed"]
        asked = [{"type": "message", "role": "user", "content": "what is in a?"}]
        first = await create(
            ws, input=asked, tools=[READ], previous_response_id=warm[-1]["response"]["id"]
        )
        [call] = done_items(first)
        assert call["type"] == "function_call" and call["name"] == "read_file"
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "42"}
        second = await create(
            ws, input=[output], tools=[READ], previous_response_id=first[-1]["response"]["id"]
        )
        [message] = done_items(second)
        assert message["content"][0]["text"] == "echo: 42"
    seen = await gateway.fake.requests(MODEL)
    assert [r["body"]["input"] for r in seen] == [asked, [*asked, call, output]]
    assert all(r["body"]["stream"] is True and "generate" not in r["body"] for r in seen)
    assert await settled(gateway, f"{key['id']}.{task}", 2) > 0
    assert gateway.seen[("ws:/v1/responses", key["key"][:12])] == 1
    assert gateway.seen[("/v1/responses", key["key"][:12])] == 0


@pytest.mark.usefixtures("fake_reset")
async def test_refusals_are_error_frames_and_the_socket_stays_open(gateway: Gateway) -> None:
    """A bad frame, an unknown previous_response_id and a call over budget each get an error
    frame with its HTTP status (the budget's says not to retry); the socket keeps serving."""
    key = await gateway.create_key(budget_usd="0.000001")
    async with socket(gateway, key["key"]) as ws:
        await ws.send("not json")
        bad = json.loads(await ws.recv())
        assert bad["type"] == "error" and bad["status"] == 400
        [lost] = await create(ws, input=[], previous_response_id="resp_elsewhere")
        assert lost["status"] == 400 and lost["error"]["code"] == "previous_response_not_found"
        [poor] = await create(ws, input=[{"role": "user", "content": "hi"}], stream=True)
        assert poor["status"] == 429 and poor["error"]["code"] == "budget_exceeded"
        assert poor["headers"]["x-should-retry"] == "false"
        warm = await create(ws, input=[], generate=False)
        assert warm[-1]["type"] == "response.completed"
    assert await gateway.fake.requests(MODEL) == []


@pytest.mark.usefixtures("fake_reset")
async def test_a_client_that_leaves_mid_stream_stops_its_call(gateway: Gateway) -> None:
    """Closing the socket mid-answer cancels the provider request, as an HTTPS client that
    disconnects does, and the call is billed what was received."""
    key = await gateway.create_key(budget_usd="5")
    reply = " ".join(f"word{i}" for i in range(60))
    await gateway.fake.script(MODEL, reply=reply, chunk_delay_ms=100)
    async with socket(gateway, key["key"]) as ws:
        await ws.send(json.dumps({"type": "response.create", "model": MODEL, "input": "hi"}))
        while json.loads(await ws.recv())["type"] != "response.output_text.delta":
            pass

    async def cancelled() -> bool:
        return (await gateway.fake.calls())[MODEL]["cancelled"] == 1

    assert await eventually(cancelled), "the provider never saw the request cancelled"
    spend = await settled_spend(gateway, key["id"])
    assert spend.calls == 1 and spend.spent_micros > 0 and spend.reserved_micros == 0


async def test_a_bad_key_is_refused_at_the_handshake(gateway: Gateway) -> None:
    """The upgrade is refused with the 401 an HTTPS call would get, in OpenAI's envelope."""
    with pytest.raises(InvalidStatus) as refused:
        async with socket(gateway, "rc-not-a-key"):
            pass
    assert refused.value.response.status_code == 401
    assert b"invalid_api_key" in refused.value.response.body


@pytest.mark.usefixtures("fake_reset")
async def test_compaction_over_the_socket_for_a_chat_target(gateway: Gateway) -> None:
    """A compaction trigger that follows a response, for a model routed to a chat-completions
    target: exactly one compaction item carries the model's summary, the call is tagged
    request:compaction, and the next full request reaches the target with the summary."""
    key = await gateway.create_key(budget_usd="5")
    await gateway.fake.script("fake-large", reply="SUMMARY: the answer is 42")
    async with socket(gateway, key["key"]) as ws:
        asked = [{"type": "message", "role": "user", "content": "what is 6 x 7?"}]
        first = await create(ws, model="coder", input=asked)
        trigger = {"type": compaction.TRIGGER}
        packed = await create(
            ws, model="coder", input=[trigger], previous_response_id=first[-1]["response"]["id"]
        )
        [item] = done_items(packed)
        assert item["type"] == "compaction"
        assert compaction.summary_of(item) == "SUMMARY: the answer is 42"
        assert packed[-1]["response"]["output"] == [item]
        await create(ws, model="coder", input=[*asked, item])
    summary_call, resumed = (await gateway.fake.requests("fake-large"))[1:]
    assert compaction.PROMPT in json.dumps(summary_call["body"]["messages"][-1])
    assert "SUMMARY: the answer is 42" in json.dumps(resumed["body"]["messages"])
    spend = await gateway.admin.get(
        "/admin/spend",
        params={"group_by": "key", "tag": "request:compaction"},
    )
    [row] = [r for r in spend.json()["rows"] if r["group"] == key["id"]]
    assert row["calls"] == 1 and float(row["cost_usd"]) > 0
