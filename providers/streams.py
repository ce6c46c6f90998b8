"""Stream translation: provider SSE events in, caller-format SSE bytes out, usage on the side.

A translator is fed one upstream event at a time and returns the bytes to pass on at once, so a
stream is never buffered. The upstream's reader always runs, because it keeps the usage and
whether the stream reached its proper end (which decides ``usage_known``). When caller and
provider speak the same format the events pass through byte for byte; otherwise they go through
the internal form to the caller's writer.
"""

from __future__ import annotations

import json

from providers.formats.hub import TextDelta, ToolDelta
from providers.formats.readers import (
    ChatReader,
    MessagesReader,
    Reader,
    ResponsesReader,
    UpstreamStreamError,
)
from providers.formats.writers import ChatWriter, MessagesWriter, ResponsesWriter, Writer
from providers.sse import DONE, DONE_DATA, SSEEvent, encode_data, encode_event
from workflows.contracts import Usage, WireFormat

__all__ = ["StreamTranslator", "UpstreamStreamError", "make_translator"]

READERS: dict[WireFormat, type[Reader]] = {
    "openai": ChatReader,
    "anthropic": MessagesReader,
    "responses": ResponsesReader,
}
WRITERS: dict[WireFormat, type[Writer]] = {
    "openai": ChatWriter,
    "anthropic": MessagesWriter,
    "responses": ResponsesWriter,
}


class StreamTranslator:
    """Reads ``upstream`` events; writes them for a ``caller`` speaking its own format."""

    def __init__(
        self, upstream: WireFormat, caller: WireFormat, *, compaction: bool = False
    ) -> None:
        self.upstream = upstream
        self.caller = caller
        self.reader = READERS[upstream]()
        self.writer: Writer | None = None
        if compaction and caller == "responses":
            self.writer = ResponsesWriter(compaction=True)
        elif upstream != caller:
            self.writer = WRITERS[caller]()
        self.output_bytes = 0
        """UTF-8 bytes of generated text and tool arguments: a bound of the output tokens
        received, for billing a stream cut short."""

    @property
    def usage(self) -> Usage:
        return self.reader.meter.usage

    @property
    def usage_known(self) -> bool:
        return self.reader.usage_known

    @property
    def complete(self) -> bool:
        return self.reader.complete

    def feed(self, event: SSEEvent) -> list[bytes]:
        """The bytes for one upstream event; raises ``UpstreamStreamError`` on an error event."""
        events = self.reader.read(event)
        for e in events:
            if isinstance(e, TextDelta):
                self.output_bytes += len(e.text.encode())
            elif isinstance(e, ToolDelta):
                self.output_bytes += len(e.arguments.encode())
        if self.writer is None:
            return [self._forward(event)]
        return [chunk for e in events for chunk in self.writer.write(e)]

    def _forward(self, event: SSEEvent) -> bytes:
        if self.upstream == "openai":
            return DONE if event.data == DONE_DATA else encode_data(event.data)
        name = event.event or str(event.json().get("type", "message"))
        return encode_event(name, event.data)

    def finish(self) -> list[bytes]:
        """Called at a clean end of the upstream body; closes a stream that lacked its marker."""
        events = self.reader.close()
        if self.writer is None:
            return [DONE] if events and self.upstream == "openai" else []
        return [chunk for e in events for chunk in self.writer.write(e)]

    def fail(self, error: Exception) -> list[bytes]:
        """The end of a stream that broke after it began, as the caller's SDK reports errors."""
        message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        if self.writer is not None:
            return self.writer.fail(str(message))
        raw = error.event if isinstance(error, UpstreamStreamError) else None
        if raw is not None:
            return [self._forward(raw)]
        return [stream_error(self.caller, str(message), self.reader.sequence + 1)]


def stream_error(caller: WireFormat, message: str, sequence: int = 0) -> bytes:
    """A terminal error event in ``caller``'s format, for a stream whose state is unknown.

    The Responses form is an ``error`` event that also carries an ``error`` object, which is
    what makes the OpenAI SDK raise rather than wait for a ``response.completed``.
    """
    if caller == "anthropic":
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return encode_event("error", body)
    error = {"message": message, "type": "api_error", "code": "server_error", "param": None}
    if caller == "responses":
        data = {"type": "error", "sequence_number": sequence, **error, "error": error}
        return f"event: error\ndata: {json.dumps(data)}\n\n".encode()
    return encode_data({"error": error})


def make_translator(
    upstream: WireFormat, caller: WireFormat, *, compaction: bool = False
) -> StreamTranslator:
    """The translator for a provider speaking ``upstream`` and a caller speaking ``caller``;
    ``compaction`` turns the model's text into one compaction item (``translate.compacting``)."""
    return StreamTranslator(upstream, caller, compaction=compaction)
