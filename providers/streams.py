"""Stream translation: provider SSE events in, caller-format SSE bytes out, usage on the side.

Each translator is fed one upstream event at a time and returns the bytes to pass on at once, so a
stream is never buffered. It also keeps the usage the provider reported and whether the stream
reached its proper end, which decides ``usage_known``.
"""

from __future__ import annotations

import time
from typing import Any

from providers.replies import (
    FINISH_TO_STOP,
    STOP_TO_FINISH,
    usage_from_anthropic,
    usage_from_openai,
    usage_to_anthropic,
    usage_to_openai,
)
from providers.sse import DONE, DONE_DATA, SSEEvent, encode_data, encode_event
from workflows.contracts import Usage, WireFormat

JSON = dict[str, Any]

ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class UpstreamStreamError(Exception):
    """The provider reported an error inside an already-open stream."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _raise_if_error(obj: JSON, kind: str | None) -> None:
    err = obj.get("error")
    if kind != "error" and not err:
        return
    err = err if isinstance(err, dict) else {"message": str(err or "stream error")}
    status = ERROR_STATUS.get(str(err.get("type")), 500)
    code = err.get("code")
    if isinstance(code, int):
        status = code
    raise UpstreamStreamError(status, str(err.get("message") or "stream error"))


def _openai_delta_bytes(delta: JSON) -> int:
    size = len(str(delta.get("content") or "").encode())
    for call in delta.get("tool_calls") or []:
        size += len(str((call.get("function") or {}).get("arguments") or "").encode())
    return size


class StreamTranslator:
    """Same-format base: tracks usage and completion, forwards nothing by itself."""

    upstream: WireFormat = "openai"

    def __init__(self) -> None:
        self.usage = Usage()
        self.usage_known = False
        self.complete = False
        self.finished = False
        self.output_bytes = 0
        """UTF-8 bytes of generated text and tool arguments: a bound of the output tokens."""

    def _track(self, event: SSEEvent) -> tuple[str | None, JSON]:
        """Parse one event, note usage and the end, raise on an in-stream error."""
        if self.upstream == "openai":
            if event.data == DONE_DATA:
                self.complete = True
                return DONE_DATA, {}
            obj = event.json()
            _raise_if_error(obj, None)
            if obj.get("usage"):
                self.usage = usage_from_openai(obj["usage"])
                self.usage_known = True
            for choice in obj.get("choices") or []:
                self.output_bytes += _openai_delta_bytes(choice.get("delta") or {})
                if choice.get("finish_reason"):
                    self.finished = True
            return None, obj
        obj = event.json()
        kind = str(obj.get("type") or event.event)
        _raise_if_error(obj, kind)
        if kind == "message_start":
            self.usage = usage_from_anthropic((obj.get("message") or {}).get("usage"))
        elif kind == "message_delta":
            self.usage = usage_from_anthropic(obj.get("usage"), self.usage)
            self.usage_known = True
        elif kind == "message_stop":
            self.complete = True
        elif kind == "content_block_delta":
            delta = obj.get("delta") or {}
            text = delta.get("text") or delta.get("partial_json") or delta.get("thinking") or ""
            self.output_bytes += len(str(text).encode())
        return kind, obj

    def feed(self, event: SSEEvent) -> list[bytes]:
        """Forward the event unchanged (same format on both sides)."""
        kind, _ = self._track(event)
        if self.upstream == "openai":
            return [DONE] if kind == DONE_DATA else [encode_data(event.data)]
        return [encode_event(event.event or str(kind), event.data)]

    def finish(self) -> list[bytes]:
        """Called at a clean end of the upstream body; closes a stream that lacked its marker."""
        if self.upstream == "openai" and self.finished and not self.complete:
            self.complete = True
            return [DONE]
        return []


class AnthropicToOpenAI(StreamTranslator):
    """Anthropic events to OpenAI ``chat.completion.chunk`` objects."""

    upstream: WireFormat = "anthropic"

    def __init__(self) -> None:
        super().__init__()
        self.id = ""
        self.model = ""
        self.created = int(time.time())
        self.tools: dict[int, int] = {}

    def _chunk(self, delta: JSON, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return encode_data(self._envelope([choice]))

    def _envelope(self, choices: list[JSON]) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def feed(self, event: SSEEvent) -> list[bytes]:
        kind, obj = self._track(event)
        if kind == "message_start":
            msg = obj.get("message") or {}
            self.id, self.model = str(msg.get("id", "")), str(msg.get("model", ""))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = obj.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tools.setdefault(int(obj.get("index", 0)), len(self.tools))
                call = {
                    "index": index,
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
        elif kind == "content_block_delta":
            delta = obj.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self.tools.get(int(obj.get("index", 0)), 0)
                args = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [args]})]
        elif kind == "message_delta":
            reason = (obj.get("delta") or {}).get("stop_reason")
            if reason:
                self.finished = True
                return [self._chunk({}, STOP_TO_FINISH.get(str(reason), "stop"))]
        elif kind == "message_stop":
            usage = {**self._envelope([]), "usage": usage_to_openai(self.usage)}
            return [encode_data(usage), DONE]
        return []

    def finish(self) -> list[bytes]:
        return []


class OpenAIToAnthropic(StreamTranslator):
    """OpenAI chunks to Anthropic message events; the closing events wait for usage."""

    upstream: WireFormat = "openai"

    def __init__(self) -> None:
        super().__init__()
        self.started = False
        self.open: int | None = None
        self.open_kind = ""
        self.next_index = 0
        self.tools: dict[int, int] = {}
        self.stop_reason = "end_turn"
        self.ended = False

    def _start(self, obj: JSON) -> list[bytes]:
        self.started = True
        message = {
            "id": obj.get("id", ""),
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": obj.get("model", ""),
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [encode_event("message_start", {"type": "message_start", "message": message})]

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        stop = {"type": "content_block_stop", "index": self.open}
        self.open, self.open_kind = None, ""
        return [encode_event("content_block_stop", stop)]

    def _open(self, block: JSON) -> list[bytes]:
        out = self._close()
        self.open, self.open_kind = self.next_index, str(block["type"])
        self.next_index += 1
        start = {"type": "content_block_start", "index": self.open, "content_block": block}
        return [*out, encode_event("content_block_start", start)]

    def _delta(self, index: int, delta: JSON) -> bytes:
        return encode_event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def feed(self, event: SSEEvent) -> list[bytes]:
        kind, obj = self._track(event)
        if kind == DONE_DATA:
            return self._end({})
        out = [] if self.started else self._start(obj)
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self.open_kind != "text":
                    out += self._open({"type": "text", "text": ""})
                text = {"type": "text_delta", "text": delta["content"]}
                out.append(self._delta(self.next_index - 1, text))
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") or {}
                slot = int(call.get("index", 0))
                if slot not in self.tools:
                    block = {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": fn.get("name", ""),
                    }
                    out += self._open({**block, "input": {}})
                    self.tools[slot] = self.next_index - 1
                if fn.get("arguments"):
                    partial = {"type": "input_json_delta", "partial_json": fn["arguments"]}
                    out.append(self._delta(self.tools[slot], partial))
            if choice.get("finish_reason"):
                self.stop_reason = FINISH_TO_STOP.get(str(choice["finish_reason"]), "end_turn")
        return out

    def _end(self, obj: JSON) -> list[bytes]:
        if self.ended:
            return []
        self.ended = self.complete = True
        out = [] if self.started else self._start(obj)
        out += self._close()
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
            "usage": usage_to_anthropic(self.usage),
        }
        out.append(encode_event("message_delta", delta))
        out.append(encode_event("message_stop", {"type": "message_stop"}))
        return out

    def finish(self) -> list[bytes]:
        return self._end({}) if self.finished else []


def make_translator(upstream: WireFormat, caller: WireFormat) -> StreamTranslator:
    """The translator for a provider speaking ``upstream`` and a caller speaking ``caller``."""
    if upstream == caller:
        same = StreamTranslator()
        same.upstream = upstream
        return same
    return AnthropicToOpenAI() if upstream == "anthropic" else OpenAIToAnthropic()
