"""OpenAICompatProvider on the wire, through httpx.MockTransport."""

from __future__ import annotations

import json
from typing import Any

import httpx

from providers import OpenAICompatProvider
from tests.providers.wire import SECRET, Recorder, Sink, call, config, openai_sse
from workflows.contracts import Usage

URL = "https://provider.test/v1"
REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4.1",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
    ],
    "usage": {
        "prompt_tokens": 30,
        "completion_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 20},
    },
}
BODY: dict[str, Any] = {
    "model": "alias",
    "messages": [{"role": "user", "content": "hello"}],
    "max_tokens": 999,
    "stream": True,
    "stream_options": {"include_usage": False},
    "metadata": {"tags": ["step:edit"], "trace": "t1"},
    "logit_bias": {"50256": -100},
}


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c1",
        "model": "gpt-4.1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


STREAM = openai_sse(
    [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}),
        _chunk({}, "stop"),
        {"id": "c1", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 2}},
    ]
)


async def test_complete_same_format_forwards_body() -> None:
    """Model, max_tokens and stream are set, tags dropped, everything else forwarded as sent."""
    rec = Recorder(lambda _: httpx.Response(200, json=REPLY))
    provider = OpenAICompatProvider(config("openai", URL), rec.client())
    reply = await provider.complete(call(BODY, "openai", model="gpt-4.1", max_tokens=64))
    sent = rec.body
    assert str(rec.requests[0].url) == f"{URL}/chat/completions"
    assert rec.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert sent["model"] == "gpt-4.1"
    assert sent["max_tokens"] == 64
    assert sent["stream"] is False
    assert "stream_options" not in sent
    assert sent["metadata"] == {"trace": "t1"}
    assert sent["logit_bias"] == {"50256": -100}
    assert BODY["metadata"]["tags"] == ["step:edit"], "the caller's body is not mutated"
    assert reply.body == REPLY
    assert reply.usage == Usage(input_tokens=10, output_tokens=4, cached_input_tokens=20)


async def test_max_completion_tokens_is_kept_when_used() -> None:
    """A body using max_completion_tokens gets the cap there, not in max_tokens."""
    rec = Recorder(lambda _: httpx.Response(200, json=REPLY))
    provider = OpenAICompatProvider(config("openai", URL), rec.client())
    body = {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 5000}
    await provider.complete(call(body, "openai", max_tokens=32))
    assert rec.body["max_completion_tokens"] == 32
    assert "max_tokens" not in rec.body


async def test_complete_for_anthropic_caller() -> None:
    """An Anthropic-format call is translated out and the answer translated back."""
    rec = Recorder(lambda _: httpx.Response(200, json=REPLY))
    provider = OpenAICompatProvider(config("openai", URL), rec.client())
    body = {
        "model": "claude",
        "system": "Be brief.",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    reply = await provider.complete(call(body, "anthropic", model="gpt-5-mini", max_tokens=10))
    assert rec.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert rec.body["max_completion_tokens"] == 10, "reasoning models need the newer field"
    assert reply.body["type"] == "message"
    assert reply.body["content"] == [{"type": "text", "text": "Hi"}]
    assert reply.body["usage"]["cache_read_input_tokens"] == 20


async def test_stream_same_format_forces_usage_and_ends_with_done() -> None:
    """include_usage is always requested; chunks pass through; usage comes from the last chunk."""
    rec = Recorder(lambda _: httpx.Response(200, content=STREAM))
    provider = OpenAICompatProvider(config("openai", URL), rec.client())
    sink = Sink()
    result = await provider.stream(call(BODY, "openai"), sink)
    sink.chunks += result.tail  # the closing events, held for the ledger
    assert rec.body["stream"] is True
    assert rec.body["stream_options"] == {"include_usage": True}
    assert (
        "".join(d["choices"][0]["delta"].get("content", "") for d in sink.data() if d["choices"])
        == "Hello"
    )
    assert sink.text.endswith("data: [DONE]\n\n")
    assert result.usage == Usage(input_tokens=12, output_tokens=2)
    assert result.usage_known is True
    assert result.chunks_sent + len(result.tail) == 6


async def test_stream_to_anthropic_caller_with_tool_call() -> None:
    """OpenAI chunks with a tool call become Anthropic events, usage in message_delta."""
    tool_start = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    stream = openai_sse(
        [
            _chunk({"role": "assistant", "content": "Let me see."}),
            _chunk({"tool_calls": [tool_start]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
            _chunk({}, "tool_calls"),
            {"id": "c1", "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 9}},
        ]
    )
    provider = OpenAICompatProvider(
        config("openai", URL), Recorder(lambda _: httpx.Response(200, content=stream)).client()
    )
    sink = Sink()
    body = {
        "model": "c",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    result = await provider.stream(call(body, "anthropic"), sink)
    sink.chunks += result.tail  # the closing events, held for the ledger
    events = sink.data()
    kinds = [e["type"] for e in events]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[4]["content_block"]["name"] == "weather"
    args = "".join(
        e["delta"].get("partial_json", "") for e in events if e["type"] == "content_block_delta"
    )
    assert json.loads(args) == {"city": "Oslo"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"]["output_tokens"] == 9
    assert "data: [DONE]" not in sink.text
    assert result.usage == Usage(input_tokens=50, output_tokens=9)
    assert result.usage_known
