"""Upstream streams read into internal events, one SSE event at a time.

A reader also keeps what the adapter needs whatever the caller's format: the usage reported so
far, whether the provider reported it (``usage_known``) and whether the stream reached its
proper end (``complete``). An error the provider reports inside the stream is raised as
``UpstreamStreamError``, carrying the raw event so a same-format caller can be shown it as is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from providers.formats import chat, messages, responses
from providers.formats.hub import (
    JSON,
    Ended,
    Event,
    Finished,
    Meter,
    Started,
    TextDelta,
    ToolDelta,
    ToolStarted,
    as_dict,
    as_list,
)
from providers.sse import DONE_DATA, SSEEvent

ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "api_error": 500,
    "server_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class UpstreamStreamError(Exception):
    """The provider reported an error inside an already-open stream."""

    def __init__(self, status: int, message: str, event: SSEEvent | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.event = event


def _raise(err: Any, event: SSEEvent) -> None:
    err = err if isinstance(err, dict) else {"message": str(err or "stream error")}
    status = ERROR_STATUS.get(str(err.get("type") or err.get("code")), 500)
    if isinstance(err.get("code"), int):
        status = err["code"]
    raise UpstreamStreamError(status, str(err.get("message") or "stream error"), event)


class Reader:
    """What all readers share; ``close`` is called at a clean end of the upstream body."""

    def __init__(self) -> None:
        self.meter = Meter()
        self.usage_known = False
        self.complete = False
        self.started = False
        self.ended = False
        self.sequence = 0
        """The last ``sequence_number`` seen (Responses), so a failure event can follow it."""

    def read(self, event: SSEEvent) -> list[Event]:
        raise NotImplementedError

    def close(self) -> list[Event]:
        return []

    def _start(self, response_id: Any, model: Any) -> list[Event]:
        if self.started:
            return []
        self.started = True
        return [Started(str(response_id or ""), str(model or ""))]

    def _end(self) -> list[Event]:
        if self.ended:
            return []
        self.ended = self.complete = True
        return [Ended(self.meter)]


class ChatReader(Reader):
    """``chat.completion.chunk`` objects, then ``[DONE]``; usage arrives in the last chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.finished = False
        self.slots: set[int] = set()

    def read(self, event: SSEEvent) -> list[Event]:
        if event.data == DONE_DATA:
            return self._end()
        obj = event.json()
        if obj.get("error"):
            _raise(obj["error"], event)
        out = self._start(obj.get("id"), obj.get("model"))
        if obj.get("usage"):
            self.meter = chat.read_usage(obj["usage"])
            self.usage_known = True
        for choice in as_list(obj.get("choices")):
            choice = as_dict(choice)
            if choice.get("index", 0) != 0:
                continue
            delta = as_dict(choice.get("delta"))
            if delta.get("content") or delta.get("refusal"):
                out.append(TextDelta(str(delta.get("content") or delta.get("refusal"))))
            for call in as_list(delta.get("tool_calls")):
                out += self._tool(as_dict(call))
            if choice.get("finish_reason"):
                self.finished = True
                out.append(Finished(chat.FINISH_TO_STOP.get(str(choice["finish_reason"]), "end")))
        return out

    def _tool(self, call: JSON) -> list[Event]:
        slot = int(call.get("index", 0))
        fn = as_dict(call.get("function"))
        out: list[Event] = []
        if slot not in self.slots:
            self.slots.add(slot)
            out.append(ToolStarted(slot, str(call.get("id", "")), str(fn.get("name", ""))))
        if fn.get("arguments"):
            out.append(ToolDelta(slot, str(fn["arguments"])))
        return out

    def close(self) -> list[Event]:
        # Some servers end a finished stream without ``[DONE]``: it is still a whole answer.
        return self._end() if self.finished else []


class MessagesReader(Reader):
    """Anthropic's named events: message_start, content blocks, message_delta, message_stop."""

    def read(self, event: SSEEvent) -> list[Event]:
        obj = event.json()
        kind = str(obj.get("type") or event.event)
        if kind == "error" or obj.get("error"):
            _raise(obj.get("error"), event)
        if kind == "message_start":
            message = as_dict(obj.get("message"))
            self.meter = messages.read_usage(message.get("usage"))
            return self._start(message.get("id"), message.get("model"))
        index = int(obj.get("index", 0))
        if kind == "content_block_start":
            block = as_dict(obj.get("content_block"))
            if messages.runs_code(block):
                usage = self.meter.usage
                runs = replace(usage, code_executions=usage.code_executions + 1)
                self.meter = replace(self.meter, usage=runs)
            if block.get("type") == "tool_use":
                return [ToolStarted(index, str(block.get("id", "")), str(block.get("name", "")))]
            if block.get("type") == "text" and block.get("text"):
                return [TextDelta(str(block["text"]))]
        elif kind == "content_block_delta":
            delta = as_dict(obj.get("delta"))
            if delta.get("type") == "text_delta":
                return [TextDelta(str(delta.get("text", "")))]
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                return [ToolDelta(index, str(delta["partial_json"]))]
        elif kind == "message_delta":
            self.meter = messages.read_usage(obj.get("usage"), self.meter.usage)
            self.usage_known = True
            reason = as_dict(obj.get("delta")).get("stop_reason")
            if reason:
                return [Finished(messages.STOP_FROM.get(str(reason), "end"))]
        elif kind == "message_stop":
            return self._end()
        return []


class ResponsesReader(Reader):
    """Responses events; text and arguments sent only whole (no deltas) are still read."""

    def __init__(self) -> None:
        super().__init__()
        self.tools: dict[int, bool] = {}
        """Function-call slots, and whether their arguments came as deltas."""
        self.texts: set[tuple[int, int]] = set()
        self.items: dict[int, Any] = {}
        """Output items by slot, so built-in tool calls are counted even if the final
        response event leaves its output out."""

    def read(self, event: SSEEvent) -> list[Event]:
        obj = event.json()
        kind = str(obj.get("type") or event.event)
        self.sequence = int(obj.get("sequence_number") or self.sequence)
        response = as_dict(obj.get("response"))
        if kind == "error":
            _raise(obj.get("error") or obj, event)
        if kind == "response.failed":
            _raise(response.get("error"), event)
        slot = int(obj.get("output_index", 0))
        part = (slot, int(obj.get("content_index", 0)))
        if kind in ("response.created", "response.in_progress"):
            return self._start(response.get("id"), response.get("model"))
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = as_dict(obj.get("item"))
            self.items[slot] = item
            if item.get("type") == "function_call" and slot not in self.tools:
                call = ToolStarted(slot, str(item.get("call_id", "")), str(item.get("name", "")))
                args = str(item.get("arguments") or "")
                self.tools[slot] = bool(args)
                return [call, ToolDelta(slot, args)] if args else [call]
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            self.texts.add(part)
            return [TextDelta(str(obj.get("delta", "")))]
        elif kind in ("response.output_text.done", "response.refusal.done"):
            whole = str(obj.get("text", obj.get("refusal", "")))
            return [] if part in self.texts or not whole else [TextDelta(whole)]
        elif kind == "response.function_call_arguments.delta":
            self.tools[slot] = True
            return [ToolDelta(slot, str(obj.get("delta", "")))]
        elif kind == "response.function_call_arguments.done":
            if not self.tools.get(slot) and obj.get("arguments"):
                self.tools[slot] = True
                return [ToolDelta(slot, str(obj["arguments"]))]
        elif kind in ("response.completed", "response.incomplete"):
            meter = responses.read_usage(response.get("usage"))
            output = response.get("output") or list(self.items.values())
            usage = replace(meter.usage, **responses.tool_counts(output))
            self.meter = replace(meter, usage=usage)
            self.usage_known = bool(response.get("usage"))
            stop = responses.stop_from(response)
            if stop == "end" and self.tools:
                stop = "tool_use"
            return [
                *self._start(response.get("id"), response.get("model")),
                Finished(stop),
                *self._end(),
            ]
        return []
