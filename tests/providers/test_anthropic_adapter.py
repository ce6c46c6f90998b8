"""AnthropicProvider on the wire, through httpx.MockTransport."""

from __future__ import annotations

import json
from typing import Any

import httpx

from providers import AnthropicProvider, ProviderCall
from tests.providers.wire import SECRET, Recorder, Sink, anthropic_sse, call, config
from workflows.contracts import Usage

URL = "https://anthropic.test"
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hi"}],
    "stop_reason": "end_turn",
    "usage": {
        "input_tokens": 10,
        "output_tokens": 3,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 7,
    },
}
BODY: dict[str, Any] = {
    "model": "alias",
    "max_tokens": 999,
    "messages": [{"role": "user", "content": "hello"}],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "metadata": {"user_id": "u1", "tags": ["step:read"]},
}
STREAM = anthropic_sse(
    [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "model": "claude-sonnet-4-5",
                "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "there"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city":"Oslo"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 17},
        },
        {"type": "message_stop"},
    ]
)


async def test_complete_same_format_and_headers() -> None:
    """Key, version and beta headers are set; unknown fields pass; tags are dropped."""
    rec = Recorder(lambda _: httpx.Response(200, json=MESSAGE))
    provider = AnthropicProvider(config("anthropic", URL), rec.client())
    headers = {"anthropic-beta": "prompt-caching-2024-07-31", "x-other": "no"}
    reply = await provider.complete(
        ProviderCall(BODY, "anthropic", "claude-sonnet-4-5", 64, headers=headers)
    )
    request = rec.requests[0]
    assert str(request.url) == f"{URL}/v1/messages"
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert "x-other" not in request.headers
    assert "authorization" not in request.headers
    sent = rec.body
    assert (sent["model"], sent["max_tokens"], sent["stream"]) == ("claude-sonnet-4-5", 64, False)
    assert sent["thinking"] == BODY["thinking"]
    assert sent["metadata"] == {"user_id": "u1"}
    assert reply.body == MESSAGE
    assert reply.usage == Usage(10, 3, 100, 7)


async def test_caller_version_header_wins() -> None:
    """A caller's anthropic-version replaces the default."""
    rec = Recorder(lambda _: httpx.Response(200, json=MESSAGE))
    provider = AnthropicProvider(config("anthropic", URL), rec.client())
    await provider.complete(
        ProviderCall(BODY, "anthropic", "m", 8, headers={"Anthropic-Version": "2099-01-01"})
    )
    assert rec.requests[0].headers["anthropic-version"] == "2099-01-01"


async def test_complete_for_openai_caller_with_tools() -> None:
    """An OpenAI call with tools goes out as Anthropic tools; tool_use returns as tool_calls."""
    answer = {
        **MESSAGE,
        "content": [
            {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Oslo"}}
        ],
        "stop_reason": "tool_use",
    }
    rec = Recorder(lambda _: httpx.Response(200, json=answer))
    provider = AnthropicProvider(config("anthropic", URL), rec.client())
    body = {
        "model": "gpt-4.1",
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "Weather?"}],
        "tools": [
            {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
        ],
        "tool_choice": "required",
        "metadata": {"tags": ["x"], "trace": "t"},
        "logprobs": True,
    }
    reply = await provider.complete(call(body, "openai", max_tokens=20))
    sent = rec.body
    assert sent["system"] == "sys"
    assert sent["tools"] == [{"name": "weather", "input_schema": {"type": "object"}}]
    assert sent["tool_choice"] == {"type": "any"}
    assert "metadata" not in sent and "logprobs" not in sent
    choice = reply.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Oslo"
    }
    assert reply.body["usage"]["prompt_tokens"] == 117


async def test_stream_same_format_passes_events_through() -> None:
    """Events are forwarded as named SSE events; usage joins message_start and message_delta."""
    rec = Recorder(lambda _: httpx.Response(200, content=STREAM))
    provider = AnthropicProvider(config("anthropic", URL), rec.client())
    sink = Sink()
    result = await provider.stream(call(BODY, "anthropic"), sink)
    sink.chunks += result.tail  # the closing events, held for the ledger
    assert rec.body["stream"] is True
    assert sink.text == STREAM.decode()
    assert result.usage == Usage(input_tokens=25, output_tokens=17, cached_input_tokens=5)
    assert result.usage_known
    assert result.chunks_sent + len(result.tail) == 11


async def test_stream_to_openai_caller() -> None:
    """Anthropic events become OpenAI chunks: text, tool call, finish, usage, [DONE]."""
    provider = AnthropicProvider(
        config("anthropic", URL), Recorder(lambda _: httpx.Response(200, content=STREAM)).client()
    )
    sink = Sink()
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    result = await provider.stream(call(body, "openai"), sink)
    sink.chunks += result.tail  # the closing events, held for the ledger
    chunks = sink.data()
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("content") or "" for d in deltas) == "Hi there"
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "weather" and calls[0]["index"] == 0
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"city": "Oslo"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 17,
        "total_tokens": 47,
        "prompt_tokens_details": {"cached_tokens": 5, "cache_write_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert sink.text.endswith("data: [DONE]\n\n")
    assert result.usage_known and result.usage.output_tokens == 17
