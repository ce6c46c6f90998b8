"""Stream translation between the three formats: every pair, text, tool calls, usage, failures."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from providers.formats.hub import (
    Ended,
    Event,
    Finished,
    Meter,
    Started,
    TextDelta,
    ToolDelta,
    ToolStarted,
)
from providers.sse import SSEEvent, iter_events
from providers.streams import READERS, WRITERS, StreamTranslator, UpstreamStreamError
from workflows.contracts import Usage, WireFormat

APIS: list[WireFormat] = ["openai", "anthropic", "responses"]
USAGE = Usage(input_tokens=40, output_tokens=9, cached_input_tokens=60, cache_write_tokens=5)
EVENTS: list[Event] = [
    Started("up_1", "m"),
    TextDelta("Hel"),
    TextDelta("lo"),
    ToolStarted(0, "call_1", "weather"),
    ToolDelta(0, '{"city"'),
    ToolDelta(0, ':"Oslo"}'),
    ToolStarted(1, "call_2", "time"),
    ToolDelta(1, "{}"),
    Finished("tool_use"),
    Ended(Meter(USAGE, 2)),
]


def upstream_bytes(fmt: WireFormat, events: list[Event]) -> bytes:
    """A provider's stream in ``fmt``, as the caller-side writer of that format makes it."""
    writer = WRITERS[fmt]()
    return b"".join(chunk for e in events for chunk in writer.write(e))


async def parse(raw: bytes) -> list[SSEEvent]:
    async def lines() -> AsyncIterator[str]:
        for line in raw.decode().split("\n"):
            yield line

    return [e async for e in iter_events(lines())]


def summary(fmt: WireFormat, sse: list[SSEEvent]) -> dict[str, Any]:
    """What a caller reading ``sse`` in ``fmt`` would see."""
    reader = READERS[fmt]()
    events = [e for s in sse for e in reader.read(s)]
    tools: dict[int, list[str]] = {}
    for e in events:
        if isinstance(e, ToolStarted):
            tools[e.slot] = [e.id, e.name, ""]
        elif isinstance(e, ToolDelta):
            tools[e.slot][2] += e.arguments
    return {
        "text": "".join(e.text for e in events if isinstance(e, TextDelta)),
        "tools": [(i, n, json.loads(a)) for i, n, a in tools.values()],
        "stop": [e.stop for e in events if isinstance(e, Finished)],
        "usage": reader.meter.usage,
        "complete": reader.complete and reader.usage_known,
    }


@pytest.mark.parametrize(("upstream", "caller"), list(itertools.product(APIS, APIS)))
async def test_stream_round_trip(upstream: WireFormat, caller: WireFormat) -> None:
    """Text, two tool calls, the stop reason and cache usage reach every caller from every
    upstream, and the translator reports the upstream's usage."""
    source = await parse(upstream_bytes(upstream, EVENTS))
    translator = StreamTranslator(upstream, caller)
    out = b"".join(chunk for e in source for chunk in translator.feed(e))
    out += b"".join(translator.finish())
    assert summary(caller, await parse(out)) == {
        "text": "Hello",
        "tools": [("call_1", "weather", {"city": "Oslo"}), ("call_2", "time", {})],
        "stop": ["tool_use"],
        "usage": USAGE,
        "complete": True,
    }
    assert (translator.usage, translator.usage_known, translator.complete) == (USAGE, True, True)


@pytest.mark.parametrize("fmt", APIS)
async def test_same_format_passes_bytes_through(fmt: WireFormat) -> None:
    """A caller speaking the provider's format gets the provider's events unchanged."""
    raw = upstream_bytes(fmt, EVENTS)
    translator = StreamTranslator(fmt, fmt)
    out = b"".join(chunk for e in await parse(raw) for chunk in translator.feed(e))
    assert out == raw


async def test_responses_stream_has_every_event_in_order() -> None:
    """A translated Responses stream opens and closes each item and part, numbered in order."""
    source = await parse(upstream_bytes("anthropic", EVENTS))
    translator = StreamTranslator("anthropic", "responses")
    out = b"".join(chunk for e in source for chunk in translator.feed(e))
    events = [e.json() for e in await parse(out)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert [i["type"] for i in final["output"]] == ["message", "function_call", "function_call"]
    assert final["usage"]["input_tokens"] == 105
    assert final["usage"]["input_tokens_details"] == {"cached_tokens": 60, "cache_write_tokens": 5}
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 0}


async def test_reasoning_tokens_reach_a_responses_caller() -> None:
    """Reasoning tokens a chat upstream reports are shown to a Responses caller, inside output."""
    source = await parse(upstream_bytes("openai", EVENTS))
    translator = StreamTranslator("openai", "responses")
    out = b"".join(chunk for e in source for chunk in translator.feed(e))
    final = (await parse(out))[-1].json()["response"]["usage"]
    assert final["output_tokens"] == 9
    assert final["output_tokens_details"] == {"reasoning_tokens": 2}


@pytest.mark.parametrize(("upstream", "caller"), list(itertools.product(APIS, APIS)))
async def test_error_inside_a_stream(upstream: WireFormat, caller: WireFormat) -> None:
    """An error event from the provider raises with its status; once output went out, the
    caller gets an error in its own format (the provider's own event when formats match)."""
    errors: dict[WireFormat, bytes] = {
        "openai": b'data: {"error": {"message": "slow down", "type": "rate_limit_error"}}\n\n',
        "anthropic": b'event: error\ndata: {"type": "error", "error": '
        b'{"type": "overloaded_error", "message": "slow down"}}\n\n',
        "responses": b'event: response.failed\ndata: {"type": "response.failed", "response": '
        b'{"id": "r", "error": {"code": "rate_limit_exceeded", "message": "slow down"}}}\n\n',
    }
    source = await parse(upstream_bytes(upstream, EVENTS[:3]) + errors[upstream])
    translator = StreamTranslator(upstream, caller)
    sent = [chunk for e in source[:-1] for chunk in translator.feed(e)]
    with pytest.raises(UpstreamStreamError) as info:
        translator.feed(source[-1])
    assert info.value.status == (529 if upstream == "anthropic" else 429)
    [last] = await parse(b"".join(translator.fail(info.value)))
    data = last.json()
    assert "slow down" in json.dumps(data)
    if caller == "responses" and upstream != "responses":
        assert data["type"] == "response.failed"
    else:
        assert data.get("error") or data["type"] == "response.failed"
    assert sent
