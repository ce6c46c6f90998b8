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

APIS: list[WireFormat] = ["openai", "anthropic", "responses"]
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}
TOOLS: dict[WireFormat, list[dict[str, Any]]] = {
    "openai": [
        {
            "type": "function",
            "function": {"name": "read_file", "description": "Read a file", "parameters": SCHEMA},
        }
    ],
    "anthropic": [{"name": "read_file", "description": "Read a file", "input_schema": SCHEMA}],
    "responses": [
        {
            "type": "function",
            "name": "read_file",
            "description": "Read a file",
            "parameters": SCHEMA,
            "strict": False,
        }
    ],
}
CAP_FIELD = {"openai": "max_tokens", "anthropic": "max_tokens", "responses": "max_output_tokens"}


def _provider(fake: FakeProvider, api: WireFormat, http: httpx.AsyncClient) -> Provider:
    base = fake.anthropic_base_url if api == "anthropic" else fake.openai_base_url
    return make_provider(ProviderConfig(name=f"fake-{api}", api=api, base_url=base), http)


def _call(
    inbound: WireFormat, model: str = "fake-small", max_tokens: int = 50, **extra: Any
) -> ProviderCall:
    body: dict[str, Any] = {"model": "alias"}
    if inbound == "responses":
        body["input"] = "hello there"
    else:
        body["messages"] = [{"role": "user", "content": "hello there"}]
    if inbound == "anthropic":
        body["max_tokens"] = 1
    body.update(extra)
    return ProviderCall(body=body, inbound=inbound, model=model, max_tokens=max_tokens)


def _text(body: dict[str, Any], inbound: WireFormat) -> str:
    if inbound == "openai":
        return str(body["choices"][0]["message"]["content"])
    if inbound == "responses":
        messages = [i for i in body["output"] if i["type"] == "message"]
        return "".join(p["text"] for m in messages for p in m["content"])
    return "".join(b["text"] for b in body["content"] if b["type"] == "text")


def _tool_args(body: dict[str, Any], inbound: WireFormat) -> Any:
    if inbound == "openai":
        assert body["choices"][0]["finish_reason"] == "tool_calls"
        return json.loads(body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    if inbound == "responses":
        [call] = [i for i in body["output"] if i["type"] == "function_call"]
        assert call["name"] == "read_file"
        return json.loads(call["arguments"])
    assert body["stop_reason"] == "tool_use"
    return body["content"][-1]["input"]


def _streamed(sink: Sink, inbound: WireFormat) -> tuple[str, bool]:
    """The text a caller saw in a stream, and whether the stream ended properly."""
    events = sink.data()
    if inbound == "openai":
        deltas = [c["choices"][0]["delta"] for c in events if c.get("choices")]
        text = "".join(d.get("content") or "" for d in deltas)
        return text, sink.text.endswith("data: [DONE]\n\n")
    if inbound == "responses":
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        return text, events[-1]["type"] == "response.completed"
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    return text, events[-1]["type"] == "message_stop"


@pytest.mark.parametrize("upstream", APIS)
@pytest.mark.parametrize("inbound", APIS)
async def test_complete_across_formats(
    fake: FakeProvider, http: httpx.AsyncClient, upstream: WireFormat, inbound: WireFormat
) -> None:
    """Every caller format gets a correct answer and exact usage from every provider format."""
    await fake.script(
        "fake-small", reply="Four.", prompt_tokens=40, cached_tokens=30, cache_write_tokens=4
    )
    reply = await _provider(fake, upstream, http).complete(_call(inbound))
    assert _text(reply.body, inbound) == "Four."
    assert reply.usage == Usage(
        input_tokens=6, output_tokens=2, cached_input_tokens=30, cache_write_tokens=4
    )
    [logged] = await fake.requests("fake-small")
    assert logged["api"] == upstream
    assert logged["body"][CAP_FIELD[upstream]] == 50


@pytest.mark.parametrize("upstream", APIS)
@pytest.mark.parametrize("inbound", APIS)
async def test_stream_across_formats(
    fake: FakeProvider, http: httpx.AsyncClient, upstream: WireFormat, inbound: WireFormat
) -> None:
    """Streams arrive in the caller's format with usage known at the end."""
    await fake.script("fake-small", reply="one two three", completion_tokens=7, cached_tokens=3)
    sink = Sink()
    result = await _provider(fake, upstream, http).stream(_call(inbound, stream=True), sink)
    sink.chunks += result.tail  # the closing events, held for the ledger
    assert _streamed(sink, inbound) == ("one two three", True)
    assert result.usage_known
    assert result.usage.output_tokens == 7
    assert result.usage.cached_input_tokens == 3
    assert result.usage.input_tokens > 0
    assert result.chunks_sent + len(result.tail) == len(sink.chunks)


@pytest.mark.parametrize("upstream", APIS)
@pytest.mark.parametrize("inbound", APIS)
async def test_tool_call_crosses_formats(
    fake: FakeProvider, http: httpx.AsyncClient, upstream: WireFormat, inbound: WireFormat
) -> None:
    """Tools go out in the provider's format and the tool call comes back in the caller's."""
    await fake.script("fake-small", tool_call={"name": "read_file", "arguments": {"path": "a.py"}})
    provider = _provider(fake, upstream, http)
    reply = await provider.complete(_call(inbound, tools=TOOLS[inbound]))
    [logged] = await fake.requests("fake-small")
    assert logged["body"]["tools"] == TOOLS[upstream]
    assert _tool_args(reply.body, inbound) == {"path": "a.py"}
    sink = Sink()
    result = await provider.stream(_call(inbound, tools=TOOLS[inbound], stream=True), sink)
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
    assert (await fake.calls())["fake-small"] == {"calls": 3, "failures": 2, "cancelled": 0}


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


@pytest.mark.parametrize("api", APIS)
async def test_missing_model_is_not_retryable(
    fake: FakeProvider, http: httpx.AsyncClient, api: WireFormat
) -> None:
    """A model the provider lacks (a scripted 404) fails the attempt without retry."""
    await fake.script("no-such-model", faults=[{"status": 404, "times": None}])
    with pytest.raises(ProviderError) as info:
        await _provider(fake, api, http).complete(_call(api, model="no-such-model"))
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
    """A stream cut after output reached the caller ends without retry, usage_known False, and
    a last event the caller's SDK reads as an error."""
    await fake.script("fake-small", reply="a b c d e f", drop_stream_after=4)
    sink = Sink()
    result = await _provider(fake, upstream, http).stream(_call(inbound, stream=True), sink)
    sink.chunks += result.tail  # the closing events, held for the ledger
    assert result.usage_known is False
    assert 0 < result.chunks_sent + len(result.tail) == len(sink.chunks)
    assert "[DONE]" not in sink.text and "message_stop" not in sink.text
    assert "response.completed" not in sink.text
    last = sink.data()[-1]
    if inbound == "responses" and upstream != "responses":
        assert last["type"] == "response.failed"
    else:
        assert last.get("error") or last.get("type") == "error"


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
