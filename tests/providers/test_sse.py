"""SSE parsing and encoding."""

from __future__ import annotations

from collections.abc import AsyncIterator

from providers.sse import SSEEvent, encode_data, encode_event, iter_events


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def _collect(*lines: str) -> list[SSEEvent]:
    return [event async for event in iter_events(_lines(*lines))]


async def test_named_and_unnamed_events() -> None:
    """Named events keep their name; comments and unknown fields are skipped."""
    events = await _collect(
        ": keep-alive", "event: ping", 'data: {"type":"ping"}', "", "data: [DONE]", "", "id: 7"
    )
    assert events == [SSEEvent("ping", '{"type":"ping"}'), SSEEvent(None, "[DONE]")]


async def test_multiline_data_and_missing_final_blank() -> None:
    """Several data lines join with newlines; a last event without a blank line still counts."""
    events = await _collect("data: a", "data:b\r", "", "data: tail")
    assert events == [SSEEvent(None, "a\nb"), SSEEvent(None, "tail")]


def test_encode_round_trip() -> None:
    """Encoded events are valid SSE and parse back to their JSON."""
    assert encode_data({"a": 1}) == b'data: {"a":1}\n\n'
    assert encode_event("x", {"b": "é"}) == 'event: x\ndata: {"b":"é"}\n\n'.encode()
    assert SSEEvent(None, '{"a": 1}').json() == {"a": 1}
