"""Server-sent events: parse a provider's stream and encode events for the caller.

Both wire formats use SSE; OpenAI sends only ``data:`` lines and ends with ``[DONE]``, Anthropic
names each event. Parsing works line by line so nothing waits for the whole stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

DONE_DATA = "[DONE]"
DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class SSEEvent:
    """One event: its ``event:`` name (``None`` when unnamed) and its joined ``data:`` lines."""

    event: str | None
    data: str

    def json(self) -> dict[str, Any]:
        """The data as a JSON object; a non-object payload is a protocol error."""
        value = json.loads(self.data)
        if not isinstance(value, dict):
            raise ValueError("SSE data is not a JSON object")
        return value


async def iter_events(lines: AsyncIterable[str]) -> AsyncIterator[SSEEvent]:
    """Group lines into events as they arrive (a blank line ends an event)."""
    name: str | None = None
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SSEEvent(name, "\n".join(data))
            name, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if data:
        yield SSEEvent(name, "\n".join(data))


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def encode_data(payload: dict[str, Any] | str) -> bytes:
    """An unnamed event, as OpenAI streams them."""
    text = payload if isinstance(payload, str) else _dumps(payload)
    return f"data: {text}\n\n".encode()


def encode_event(name: str, payload: dict[str, Any] | str) -> bytes:
    """A named event, as Anthropic streams them."""
    text = payload if isinstance(payload, str) else _dumps(payload)
    return f"event: {name}\ndata: {text}\n\n".encode()
