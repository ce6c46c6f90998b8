"""Both adapters against the real fake provider on 127.0.0.1: answers, streams, faults, tools."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx
import pytest

from fake_provider import FakeProvider
from providers import (
    Provider,
    ProviderCall,
    ProviderConfig,
    ProviderError,
    make_http_client,
    make_provider,
)
from tests.providers.wire import Sink
from workflows.contracts import Usage, WireFormat

APIS: list[WireFormat] = ["openai", "anthropic"]
TOOLS_OPENAI = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]
TOOLS_ANTHROPIC = [
    {
        "name": "read_file",
        "description": "Read a file",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]


def _provider(fake: FakeProvider, api: WireFormat, http: httpx.AsyncClient) -> Provider:
    base = fake.openai_base_url if api == "openai" else fake.anthropic_base_url
    return make_provider(ProviderConfig(name=f"fake-{api}", api=api, base_url=base), http)


def _call(
    inbound: WireFormat, model: str = "fake-small", max_tokens: int = 50, **extra: Any
) -> ProviderCall:
    body: dict[str, Any] = {
        "model": "alias",
        "messages": [{"role": "user", "content": "hello there"}],
    }
    if inbound == "anthropic":
        body["max_tokens"] = 1
    body.update(extra)
    return ProviderCall(body=body, inbound=inbound, model=model, max_tokens=max_tokens)


def _text(body: dict[str, Any], inbound: WireFormat) -> str:
    if inbound == "openai":
        return str(body["choices"][0]["message"]["content"])
    return "".join(b["text"] for b in body["content"] if b["type"] == "text")


@pytest.mark.parametrize("upstream", APIS)
@pytest.mark.parametrize("inbound", APIS)
async def test_complete_across_formats(
    fake: FakeProvider, http: httpx.AsyncClient, upstream: WireFormat, inbound: WireFormat
) -> None:
    """Every caller format gets a correct answer and exact usage from every provider format."""
    await fake.script("fake-small", reply="Four.", prompt_tokens=40, cached_tokens=30)
    reply = await _provider(fake, upstream, http).complete(_call(inbound))
    assert _text(reply.body, inbound) == "Four."
    assert reply.usage == Usage(input_tokens=10, output_tokens=2, cached_input_tokens=30)
    [logged] = await fake.requests("fake-small")
    assert logged["api"] == upstream
    assert logged["body"]["max_tokens"] == 50


@pytest.mark.parametrize("upstream", APIS)
@pytest.mark.parametrize("inbound", APIS)
async def test_stream_across_formats(
    fake: FakeProvider, http: httpx.AsyncClient, upstream: WireFormat, inbound: WireFormat
) -> None:
    """Streams arrive in the caller's format with usage known at the end."""
    await fake.script("fake-small", reply="one two three", completion_tokens=7)
    sink = Sink()
    result = await _provider(fake, upstream, http).stream(_call(inbound, stream=True), sink)
    sink.chunks += result.tail  # the closing events, held for the ledger
    if inbound == "openai":
        deltas = [c["choices"][0]["delta"] for c in sink.data() if c.get("choices")]
        assert "".join(d.get("content") or "" for d in deltas) == "one two three"
        assert sink.text.endswith("data: [DONE]\n\n")
    else:
        events = sink.data()
        text = "".join(
            e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta"
        )
        assert text == "one two three"
        assert events[-1]["type"] == "message_stop"
    assert result.usage_known
    assert result.usage.output_tokens == 7
    assert result.usage.input_tokens > 0
    assert result.chunks_sent + len(result.tail) == len(sink.chunks)


@pytest.mark.parametrize(
    ("upstream", "inbound"), [("anthropic", "openai"), ("openai", "anthropic")]
)
async def test_tool_call_crosses_formats(
    fake: FakeProvider, http: httpx.AsyncClient, upstream: WireFormat, inbound: WireFormat
) -> None:
    """Tools go out in the provider's format and the tool call comes back in the caller's."""
    await fake.script("fake-small", tool_call={"name": "read_file", "arguments": {"path": "a.py"}})
    tools = TOOLS_OPENAI if inbound == "openai" else TOOLS_ANTHROPIC
    provider = _provider(fake, upstream, http)
    reply = await provider.complete(_call(inbound, tools=tools))
    [logged] = await fake.requests("fake-small")
    assert logged["body"]["tools"] == (TOOLS_ANTHROPIC if upstream == "anthropic" else TOOLS_OPENAI)
    if inbound == "openai":
        choice = reply.body["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {
            "path": "a.py"
        }
    else:
        assert reply.body["stop_reason"] == "tool_use"
        assert reply.body["content"][-1]["input"] == {"path": "a.py"}
    sink = Sink()
    result = await provider.stream(_call(inbound, tools=tools, stream=True), sink)
    sink.chunks += result.tail  # the closing events, held for the ledger
    assert result.usage_known
    assert "read_file" in sink.text and "a.py" in sink.text.replace('\\"', '"')


@pytest.mark.parametrize("api", APIS)
async def test_queued_500s_then_success(
    fake: FakeProvider, http: httpx.AsyncClient, api: WireFormat
) -> None:
    """Two scripted 500s surface as retryable errors, then success; no retry inside."""
    await fake.script("fake-small", faults=[{"status": 500, "times": 2}])
    provider = _provider(fake, api, http)
    for _ in range(2):
        with pytest.raises(ProviderError) as info:
            await provider.complete(_call(api))
        assert (info.value.status, info.value.retryable) == (500, True)
    await provider.complete(_call(api))
    assert (await fake.calls())["fake-small"] == {"calls": 3, "failures": 2}


@pytest.mark.parametrize("api", APIS)
async def test_529_and_retry_after(
    fake: FakeProvider, http: httpx.AsyncClient, api: WireFormat
) -> None:
    """An overloaded 529 and a 429 with Retry-After are retryable, the delay is passed on."""
    await fake.script(
        "fake-large",
        faults=[{"status": 529, "message": "Overloaded"}, {"status": 429, "retry_after": 2}],
    )
    provider = _provider(fake, api, http)
    with pytest.raises(ProviderError) as overloaded:
        await provider.stream(_call(api, model="fake-large"), Sink())
    assert (overloaded.value.status, overloaded.value.retryable) == (529, True)
    assert "Overloaded" in overloaded.value.message
    with pytest.raises(ProviderError) as limited:
        await provider.complete(_call(api, model="fake-large"))
    assert (limited.value.status, limited.value.retry_after) == (429, 2.0)


async def test_unknown_model_is_not_retryable(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    """A model the provider does not know fails the call without retry."""
    with pytest.raises(ProviderError) as info:
        await _provider(fake, "openai", http).complete(_call("openai", model="no-such-model"))
    assert (info.value.status, info.value.retryable) == (404, False)


@pytest.mark.parametrize("api", APIS)
async def test_hang_becomes_retryable_timeout(fake: FakeProvider, api: WireFormat) -> None:
    """A provider that never answers is a retryable 504 once the client's read timeout passes."""
    await fake.script("fake-small", timeout=True)
    timeout = httpx.Timeout(connect=2.0, read=0.3, write=2.0, pool=2.0)
    async with make_http_client(timeout=timeout) as http:
        with pytest.raises(ProviderError) as info:
            await _provider(fake, api, http).complete(_call(api))
    assert (info.value.status, info.value.retryable) == (504, True)


@pytest.mark.parametrize("api", APIS)
async def test_stream_dropped_before_output_is_retryable(
    fake: FakeProvider, http: httpx.AsyncClient, api: WireFormat
) -> None:
    """A stream cut before the first event can go to the next target."""
    await fake.script("fake-small", faults=[{"drop_stream_after": 0}])
    with pytest.raises(ProviderError) as info:
        await _provider(fake, api, http).stream(_call(api, stream=True), Sink())
    assert info.value.retryable


@pytest.mark.parametrize("upstream", APIS)
@pytest.mark.parametrize("inbound", APIS)
async def test_stream_dropped_after_output_is_partial(
    fake: FakeProvider, http: httpx.AsyncClient, upstream: WireFormat, inbound: WireFormat
) -> None:
    """A stream cut after output reached the caller ends without retry and usage_known False."""
    await fake.script("fake-small", reply="a b c d e f", drop_stream_after=4)
    sink = Sink()
    result = await _provider(fake, upstream, http).stream(_call(inbound, stream=True), sink)
    sink.chunks += result.tail  # the closing events, held for the ledger
    assert result.usage_known is False
    assert 0 < result.chunks_sent + len(result.tail) == len(sink.chunks)
    assert "[DONE]" not in sink.text and "message_stop" not in sink.text


async def test_cli_starts_on_a_free_port(tmp_path: Any) -> None:
    """python -m fake_provider --port 0 prints its address and serves."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fake_provider", "--port", "0", "--log-level", "warning",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/health")).json() == {"ok": True}
    finally:
        proc.terminate()
        await proc.wait()
