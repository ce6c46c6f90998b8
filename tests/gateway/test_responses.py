"""The Responses API through the running gateway: the openai SDK, the Agents SDK, fallback across
formats, tags, and the refusals a Responses caller must understand."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import openai
import pytest
from agents import Agent, RunConfig, Runner, function_tool, set_tracing_disabled
from agents.models.openai_provider import OpenAIProvider
from agents.models.openai_responses import OpenAIResponsesModel
from openai.types.responses import FunctionToolParam, Response

from tests.gateway.conftest import Gateway
from tests.gateway.test_sdks import settled
from workflows.contracts import MICROS_PER_USD

READ_FILE: FunctionToolParam = {
    "type": "function",
    "name": "read_file",
    "description": "Read a file of the project",
    "parameters": {
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
        "additionalProperties": False,
    },
    "strict": True,
}
CLIENTS: list[openai.AsyncOpenAI] = []


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """SDK clients made by a test are closed after it, so no socket is left to the GC."""
    yield
    while CLIENTS:
        await CLIENTS.pop().close()


def oai(gateway: Gateway, key: dict[str, Any], **headers: str) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1",
        api_key=key["key"],
        max_retries=0,
        default_headers=headers,
    )
    CLIENTS.append(client)
    return client


async def task_spend(gateway: Gateway, task: str) -> dict[str, Any]:
    """The ledger's spend for one ``task:`` tag, as ``/admin/spend?group_by=tag:task`` says it."""
    response = await gateway.admin.get(
        "/admin/spend", params={"group_by": "tag:task", "tag": f"task:{task}"}
    )
    assert response.status_code == 200, response.text
    [row] = response.json()["rows"]
    assert row["group"] == f"task:{task}"
    result: dict[str, Any] = row
    return result


async def test_responses_create_with_a_function_tool_round_trip(gateway: Gateway) -> None:
    """responses.create calls a function, gets its output back, answers in text; both calls are
    billed to the task named in metadata, and runcap's tags never reach the provider."""
    model, task = "gpt-5.6-terra", uuid.uuid4().hex[:8]
    await gateway.fake.script(model, tool_call={"name": "read_file", "arguments": {"path": "a.py"}})
    key = await gateway.create_key(budget_usd="5")
    client = oai(gateway, key)
    metadata = {"tags": f"agent:codex,task:{task}", "session": "s-1"}
    try:
        first = await client.responses.create(
            model=model, input="What is in a.py?", tools=[READ_FILE], metadata=metadata
        )
        [call] = [item for item in first.output if item.type == "function_call"]
        assert (call.name, json.loads(call.arguments)) == ("read_file", {"path": "a.py"})
        history: list[Any] = [
            {"role": "user", "content": "What is in a.py?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "x = 1"},
        ]
        second = await client.responses.create(
            model=model,
            input=history,
            tools=[READ_FILE],
            metadata=metadata,
            store=False,
        )
        sent = await gateway.fake.requests(model)
    finally:
        await gateway.fake.reset()
    assert second.output_text == "echo: x = 1"
    assert second.usage is not None and second.usage.output_tokens > 0
    assert [r["api"] for r in sent] == ["responses", "responses"]
    assert all(r["body"]["metadata"] == {"session": "s-1"} for r in sent)
    total = await settled(gateway, f"{key['id']}.{task}", 2)
    row = await task_spend(gateway, task)
    assert row["calls"] == 2 and Decimal(row["cost_usd"]) * MICROS_PER_USD == total > 0


async def test_responses_stream_with_a_function_tool_round_trip(gateway: Gateway) -> None:
    """responses.stream delivers the call and then the answer; tags come from the header."""
    model, task = "gpt-6.1-sol", uuid.uuid4().hex[:8]
    await gateway.fake.script(
        model, tool_call={"name": "read_file", "arguments": {"path": "b.py"}}, cached_tokens=8
    )
    key = await gateway.create_key(budget_usd="5")
    client = oai(gateway, key, **{"x-runcap-tags": f"task:{task},step:edit"})
    try:
        async with client.responses.stream(
            model=model, input="Read b.py", tools=[READ_FILE]
        ) as stream:
            kinds = [event.type async for event in stream]
            first = await stream.get_final_response()
        [call] = [item for item in first.output if item.type == "function_call"]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert "response.function_call_arguments.delta" in kinds
        assert first.usage is not None
        assert first.usage.input_tokens_details.cached_tokens == 8
        follow_up: list[Any] = [
            {"role": "user", "content": "Read b.py"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "y = 2"},
        ]
        async with client.responses.stream(
            model=model, input=follow_up, tools=[READ_FILE]
        ) as stream:
            text = "".join(
                [e.delta async for e in stream if e.type == "response.output_text.delta"]
            )
            final = await stream.get_final_response()
    finally:
        await gateway.fake.reset()
    assert text == final.output_text == "echo: y = 2"
    await settled(gateway, f"{key['id']}.{task}", 2)
    assert (await task_spend(gateway, task))["calls"] == 2


async def test_agents_sdk_runs_an_agent_with_a_tool(gateway: Gateway) -> None:
    """The OpenAI Agents SDK's default model class drives a tool-using agent through runcap."""
    set_tracing_disabled(True)  # tracing would export to OpenAI's servers
    task = uuid.uuid4().hex[:8]
    key = await gateway.create_key(budget_usd="5")
    looked_up: list[str] = []

    @function_tool
    def weather(city: str) -> str:
        """The weather in a city."""
        looked_up.append(city)
        return f"sunny in {city}"

    provider = OpenAIProvider(openai_client=oai(gateway, key, **{"x-runcap-tags": f"task:{task}"}))
    model = provider.get_model(None)
    assert isinstance(model, OpenAIResponsesModel)
    await gateway.fake.script(
        model.model, tool_call={"name": "weather", "arguments": {"city": "Oslo"}}
    )
    agent = Agent(name="forecaster", instructions="Use the weather tool.", tools=[weather])
    try:
        result = await Runner.run(
            agent, "Weather in Oslo?", run_config=RunConfig(model_provider=provider)
        )
    finally:
        await gateway.fake.reset()
    assert looked_up == ["Oslo"]
    assert result.final_output == "echo: sunny in Oslo"
    await settled(gateway, f"{key['id']}.{task}", 2)
    assert (await task_spend(gateway, task))["calls"] == 2


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_call_falls_back_from_chat_529_to_anthropic(
    gateway: Gateway, stream: bool
) -> None:
    """A chain whose chat-completions target overloads is served by its Anthropic target, and
    the Responses caller gets a proper Responses answer, tool call included."""
    task = uuid.uuid4().hex[:8]
    key = await gateway.create_key(budget_usd="5")
    client = oai(gateway, key, **{"x-runcap-tags": f"task:{task}"})
    await gateway.fake.script("fake-large", faults=[{"status": 529, "times": None}])
    await gateway.fake.script(
        "claude-haiku-4-5",
        tool_call={"name": "read_file", "arguments": {"path": "c.py"}},
        reply="Reading it.",
        cache_write_tokens=6,
    )
    answer: Response
    try:
        if stream:
            async with client.responses.stream(
                model="cross", input="c.py?", tools=[READ_FILE]
            ) as s:
                answer = await s.get_final_response()
        else:
            answer = await client.responses.create(model="cross", input="c.py?", tools=[READ_FILE])
        served = await gateway.fake.requests("claude-haiku-4-5")
        tried = await gateway.fake.calls()
    finally:
        await gateway.fake.reset()
    assert tried["fake-large"]["failures"] >= 1
    assert served[-1]["api"] == "anthropic"
    assert served[-1]["body"]["tools"][0]["name"] == "read_file"
    assert answer.output_text == "Reading it."
    [call] = [item for item in answer.output if item.type == "function_call"]
    assert json.loads(call.arguments) == {"path": "c.py"}
    assert answer.usage is not None
    assert answer.usage.input_tokens_details.cache_write_tokens == 6
    await settled(gateway, f"{key['id']}.{task}", 1)
    row = await task_spend(gateway, task)
    assert row["calls"] == 1 and Decimal(row["cost_usd"]) > 0


async def test_stored_state_and_untranslatable_tools_get_a_clear_400(gateway: Gateway) -> None:
    """previous_response_id is refused (runcap stores nothing); a built-in tool passes to a
    Responses target and is refused, clearly, by a target of another format."""
    key = await gateway.create_key(budget_usd="5")
    client = oai(gateway, key)
    with pytest.raises(openai.BadRequestError, match="stores no responses") as stored:
        await client.responses.create(
            model="gpt-5.6-terra", input="again", previous_response_id="resp_123"
        )
    assert stored.value.body is not None
    assert stored.value.status_code == 400
    web: Any = [{"type": "web_search"}]
    try:
        served = await client.responses.create(
            model="gpt-5.6-terra", input="news?", tools=web, max_tool_calls=2
        )
        [logged] = await gateway.fake.requests("gpt-5.6-terra")
        with pytest.raises(openai.BadRequestError, match="web_search"):
            await client.responses.create(model="cross", input="news?", tools=web, max_tool_calls=2)
    finally:
        await gateway.fake.reset()
    assert served.output_text and logged["body"]["tools"] == web


async def test_models_list_says_which_price_table(gateway: Gateway) -> None:
    """GET /v1/models names the price table in use, and each model's price source."""
    key = await gateway.create_key()
    response = await oai(gateway, key).models.with_raw_response.list()
    body = response.http_response.json()
    assert body["runcap_price_source"].startswith("genai-prices ")
    sources = {m["id"]: m["runcap_price_source"] for m in body["data"]}
    assert sources["claude-opus-4-8"] == body["runcap_price_source"]
    assert sources["fake-small"] == "runcap"
