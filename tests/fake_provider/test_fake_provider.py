"""The fake provider as a real HTTP server: validation, usage, scripts, counters, wire shapes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from fake_provider import FakeProvider
from fake_provider.script import compact
from tests.polling import eventually

MESSAGES = [{"role": "user", "content": "What is two plus two?"}]


async def _post(fake: FakeProvider, path: str, body: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fake.base_url, timeout=10) as client:
        return await client.post(path, json=body)


async def test_validation_errors_look_like_real_providers(fake: FakeProvider) -> None:
    """Missing messages or input, missing or bad max_tokens and a scripted missing model get
    proper error bodies."""
    missing = await _post(fake, "/v1/chat/completions", {"model": "fake-small"})
    assert missing.status_code == 400
    assert "messages" in missing.json()["error"]["message"]
    no_cap = await _post(fake, "/v1/messages", {"model": "fake-small", "messages": MESSAGES})
    assert no_cap.status_code == 400
    assert no_cap.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }
    zero = await _post(
        fake, "/v1/chat/completions", {"model": "fake-small", "messages": MESSAGES, "max_tokens": 0}
    )
    assert zero.status_code == 400
    no_input = await _post(fake, "/v1/responses", {"model": "fake-small"})
    assert no_input.status_code == 400
    assert "input" in no_input.json()["error"]["message"]
    await fake.script("nope-1", faults=[{"status": 404, "message": "no such model"}])
    unknown = await _post(
        fake, "/v1/messages", {"model": "nope-1", "messages": MESSAGES, "max_tokens": 5}
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found_error"
    assert (await fake.calls())["nope-1"] == {"calls": 1, "failures": 1, "cancelled": 0}


async def test_any_model_is_served(fake: FakeProvider) -> None:
    """Any model name is served, priced or not (a price override must work offline); the
    priced ones are listed."""
    for model in ("gpt-4.1", "claude-sonnet-4-5-20250929", "fake-anything", "brand-new-model"):
        reply = await _post(fake, "/v1/chat/completions", {"model": model, "messages": MESSAGES})
        assert reply.status_code == 200, model
        assert reply.json()["model"] == model
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        listed = {m["id"] for m in (await client.get("/v1/models")).json()["data"]}
    assert {"gpt-5", "claude-opus-4-1", "fake-small"} <= listed


async def test_default_answer_echoes_with_believable_usage(fake: FakeProvider) -> None:
    """The echo answer reports prompt tokens within the messages' byte length."""
    reply = (
        await _post(fake, "/v1/chat/completions", {"model": "fake-small", "messages": MESSAGES})
    ).json()
    text = reply["choices"][0]["message"]["content"]
    assert text == "echo: What is two plus two?"
    usage = reply["usage"]
    assert 1 <= usage["prompt_tokens"] <= len(compact(MESSAGES))
    assert usage["completion_tokens"] == -(-len(text.encode()) // 4)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_scripted_usage_and_max_tokens(fake: FakeProvider) -> None:
    """completion_tokens "max" uses the whole cap; scripted prompt and cache counts are reported."""
    await fake.script(
        "fake-large",
        reply="ok",
        completion_tokens="max",
        prompt_tokens=100,
        cached_tokens=60,
        cache_write_tokens=10,
    )
    body = {"model": "fake-large", "messages": MESSAGES, "max_tokens": 33}
    reply = (await _post(fake, "/v1/messages", body)).json()
    assert reply["stop_reason"] == "max_tokens"
    assert reply["usage"] == {
        "input_tokens": 30,
        "output_tokens": 33,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 10,
    }
    openai = (await _post(fake, "/v1/chat/completions", body)).json()
    assert openai["usage"]["prompt_tokens"] == 100
    assert openai["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 60,
        "cache_write_tokens": 10,
    }
    responses = (await _post(fake, "/v1/responses", {**body, "input": "hi"})).json()
    assert responses["status"] == "incomplete"
    assert responses["usage"]["input_tokens"] == 100
    assert responses["usage"]["input_tokens_details"] == {
        "cached_tokens": 60,
        "cache_write_tokens": 10,
    }


async def test_long_answer_is_cut_at_max_tokens(fake: FakeProvider) -> None:
    """A reply longer than max_tokens is truncated and reports finish_reason length."""
    await fake.script("fake-small", reply="word " * 100)
    body = {"model": "fake-small", "messages": MESSAGES, "max_tokens": 5}
    reply = (await _post(fake, "/v1/chat/completions", body)).json()
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 5
    assert len(reply["choices"][0]["message"]["content"]) <= 20


async def test_fault_queue_then_success_and_reset(fake: FakeProvider) -> None:
    """Queued faults answer first, then the model succeeds; reset clears scripts and counters."""
    await fake.script(
        "fake-small", faults=[{"status": 500, "times": 2}, {"status": 429, "retry_after": 3}]
    )
    body = {"model": "fake-small", "messages": MESSAGES}
    statuses = [(await _post(fake, "/v1/chat/completions", body)) for _ in range(4)]
    assert [r.status_code for r in statuses] == [500, 500, 429, 200]
    assert statuses[2].headers["retry-after"] == "3"
    assert (await fake.calls()) == {"fake-small": {"calls": 4, "failures": 3, "cancelled": 0}}
    await fake.reset()
    assert (await fake.calls()) == {}


async def test_permanent_fault(fake: FakeProvider) -> None:
    """A fault with times null never runs out; a script for "*" covers every model."""
    await fake.script("*", faults=[{"status": 529, "times": None}])
    body = {"model": "fake-large", "max_tokens": 5, "messages": MESSAGES}
    for _ in range(3):
        reply = await _post(fake, "/v1/messages", body)
        assert reply.status_code == 529
        assert reply.json()["error"]["type"] == "overloaded_error"


async def test_openai_stream_shape(fake: FakeProvider) -> None:
    """OpenAI streams end with a usage chunk (when asked) and [DONE]."""
    body = {
        "model": "fake-small",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        text = (await client.post("/v1/chat/completions", json=body)).text
    lines = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    usage_chunk = json.loads(lines[-2])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0
    content = "".join(json.loads(x)["choices"][0]["delta"].get("content", "") for x in lines[:-2])
    assert content == "echo: What is two plus two?"


async def test_anthropic_stream_shape(fake: FakeProvider) -> None:
    """Anthropic streams send the documented event sequence."""
    body = {"model": "fake-small", "messages": MESSAGES, "max_tokens": 50, "stream": True}
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        text = (await client.post("/v1/messages", json=body)).text
    names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_requests_are_logged_for_inspection(fake: FakeProvider) -> None:
    """The control API shows the body and version header that reached the provider."""
    body = {"model": "fake-small", "messages": MESSAGES, "max_tokens": 5}
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        await client.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    [logged] = await fake.requests("fake-small")
    assert logged["api"] == "anthropic"
    assert logged["body"] == body
    assert logged["headers"] == {"anthropic-version": "2023-06-01"}


async def test_bad_script_is_rejected(fake: FakeProvider) -> None:
    """A typo in a script is a 422, not a silently ignored field."""
    reply = await _post(fake, "/_control/script", {"model": "fake-small", "repyl": "x"})
    assert reply.status_code == 422


async def test_latency_delays_but_answers(fake: FakeProvider) -> None:
    """Scripted latency slows the answer without failing it."""
    await fake.script("fake-small", latency_ms=30, reply="late")
    body = {"model": "fake-small", "messages": MESSAGES}
    reply = await _post(fake, "/v1/chat/completions", body)
    assert reply.json()["choices"][0]["message"]["content"] == "late"
    assert (await fake.calls())["fake-small"] == {"calls": 1, "failures": 0, "cancelled": 0}


async def test_responses_api_whole_and_streamed(fake: FakeProvider) -> None:
    """/v1/responses answers with a response object, or the full event stream in order."""
    await fake.script("gpt-any", reply="two words", reasoning_tokens=4)
    body: dict[str, Any] = {"model": "gpt-any", "input": "What is two plus two?"}
    whole = (await _post(fake, "/v1/responses", body)).json()
    assert [i["type"] for i in whole["output"]] == ["reasoning", "message"]
    assert whole["output"][1]["content"][0]["text"] == "two words"
    assert whole["usage"]["output_tokens"] == 3 + 4
    assert whole["usage"]["output_tokens_details"] == {"reasoning_tokens": 4}
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        text = (await client.post("/v1/responses", json={**body, "stream": True})).text
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"] == whole["usage"]
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "two words"


TOOL_TURNS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "openai": (
        "/v1/chat/completions",
        {"messages": MESSAGES, "tools": [{"type": "function", "function": {"name": "read"}}]},
        {"role": "tool", "tool_call_id": "call_fake_1", "content": "file says 4"},
    ),
    "anthropic": (
        "/v1/messages",
        {"messages": MESSAGES, "max_tokens": 50, "tools": [{"name": "read", "input_schema": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_fake_1", "content": "file says 4"}
            ],
        },
    ),
    "responses": (
        "/v1/responses",
        {"input": MESSAGES, "tools": [{"type": "function", "name": "read"}]},
        {"type": "function_call_output", "call_id": "call_fake_1", "output": "file says 4"},
    ),
}


async def test_tool_round_trip_ends_with_text(fake: FakeProvider) -> None:
    """A scripted tool is called while tools are offered, and once its result comes back the
    model answers in text (echoing the result), in every format."""
    await fake.script("fake-small", tool_call={"name": "read", "arguments": {"path": "a"}})
    for api, (path, body, result) in TOOL_TURNS.items():
        first = (await _post(fake, path, {"model": "fake-small", **body})).json()
        assert "call_fake_1" in json.dumps(first), api
        key = "input" if api == "responses" else "messages"
        second_body = {"model": "fake-small", **body, key: [*body[key], result]}
        second = json.dumps((await _post(fake, path, second_body)).json())
        assert "echo: file says 4" in second, api
        assert "call_fake_1" not in second, api


async def test_concurrency_counts_requests_being_answered(fake: FakeProvider) -> None:
    """Three held requests run at once (a stream until its last chunk); when their clients
    leave nothing runs, and the peak stays three."""
    await fake.script("fake-small", latency_ms=60_000)
    body = {"model": "fake-small", "messages": MESSAGES, "max_tokens": 5}
    async with httpx.AsyncClient(base_url=fake.base_url, timeout=60) as client:
        held = [
            asyncio.create_task(client.post("/v1/chat/completions", json={**body, "stream": s}))
            for s in (False, False, True)
        ]

        async def running(n: int) -> bool:
            return (await fake.concurrency()).get("fake-small", {}).get("running") == n

        assert await eventually(lambda: running(3)), await fake.concurrency()
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        assert await eventually(lambda: running(0)), await fake.concurrency()
    await fake.script("fake-small", chunk_delay_ms=1)
    stream = await _post(fake, "/v1/chat/completions", {**body, "stream": True})
    assert stream.status_code == 200
    assert (await fake.concurrency())["fake-small"] == {"running": 0, "peak": 3}


async def test_responses_compaction_answers_one_sealed_item(fake: FakeProvider) -> None:
    """A Responses request ending with Codex's compaction trigger gets exactly one compaction
    item, opaque like OpenAI's; sent back in place of the history, it gets a text answer that
    shows the summary kept the tool's output."""
    tools = [{"type": "additional_tools", "role": "developer", "tools": []}]
    history = [
        *tools,
        {"type": "message", "role": "user", "content": "read notes.txt"},
        {"type": "custom_tool_call", "call_id": "c1", "name": "exec", "input": "cat notes.txt"},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": "the password is 42"},
    ]
    body = {"model": "fake-large", "input": [*history, {"type": "compaction_trigger"}]}
    reply = (await _post(fake, "/v1/responses", body)).json()
    [item] = reply["output"]
    assert item["type"] == "compaction" and "42" not in item["encrypted_content"]
    resumed = {"model": "fake-large", "input": [*history[:2], item]}
    answer = (await _post(fake, "/v1/responses", resumed)).json()
    [message] = answer["output"]
    assert "the password is 42" in message["content"][0]["text"]


async def test_custom_tool_call_on_responses(fake: FakeProvider) -> None:
    """A scripted freeform tool call is a custom_tool_call on the Responses API (tools offered in
    Codex's additional_tools item count), its output gets a text answer, and ``times`` bounds
    how often the tool is called."""
    await fake.script("fake-small", tool_call={"name": "exec", "input": "text('hi')", "times": 1})
    tools = {"type": "additional_tools", "role": "developer", "tools": []}
    asked = [tools, {"type": "message", "role": "user", "content": "run it"}]
    first = (await _post(fake, "/v1/responses", {"model": "fake-small", "input": asked})).json()
    [call] = first["output"]
    assert call["type"] == "custom_tool_call" and call["input"] == "text('hi')"
    output = {"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "hi"}
    second = await _post(
        fake, "/v1/responses", {"model": "fake-small", "input": [*asked, call, output]}
    )
    assert second.json()["output"][0]["content"][0]["text"] == "echo: hi"
    again = (await _post(fake, "/v1/responses", {"model": "fake-small", "input": asked})).json()
    assert again["output"][0]["type"] == "message", "times: 1 calls the tool once"
