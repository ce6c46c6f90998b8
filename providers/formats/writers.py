"""Internal stream events written as the caller's SSE, each event as soon as it is read.

Each writer keeps just enough state to number blocks and items and to close them properly; the
closing events wait for ``Ended`` because Anthropic and Responses put the usage there.
``fail`` ends a stream that broke after it began, in a way the caller's SDK reports as an error.
"""

from __future__ import annotations

import time

from providers.formats import chat, compaction, messages, responses
from providers.formats.hub import (
    JSON,
    Ended,
    Event,
    Finished,
    Started,
    StopReason,
    TextDelta,
    ToolCall,
    ToolDelta,
    ToolStarted,
)
from providers.sse import DONE, encode_data, encode_event


class Writer:
    def __init__(self) -> None:
        self.started = False
        self.stop: StopReason = "end"
        self.tools_seen = False

    def write(self, event: Event) -> list[bytes]:
        if isinstance(event, Started):
            return [] if self.started else self.begin(event)
        out = [] if self.started else self.begin(Started("", ""))
        if isinstance(event, Finished):
            self.stop = event.stop
        elif isinstance(event, ToolStarted):
            self.tools_seen = True
        return out + self.emit(event)

    def final_stop(self) -> StopReason:
        return "tool_use" if self.stop == "end" and self.tools_seen else self.stop

    def begin(self, event: Started) -> list[bytes]:
        raise NotImplementedError

    def emit(self, event: Event) -> list[bytes]:
        raise NotImplementedError

    def fail(self, message: str) -> list[bytes]:
        raise NotImplementedError


class ChatWriter(Writer):
    def __init__(self) -> None:
        super().__init__()
        self.base: JSON = {"id": "", "object": "chat.completion.chunk", "model": ""}
        self.slots: dict[int, int] = {}

    def _chunk(self, delta: JSON, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return encode_data({**self.base, "choices": [choice]})

    def begin(self, event: Started) -> list[bytes]:
        self.started = True
        self.base.update(id=event.id, model=event.model, created=int(time.time()))
        return [self._chunk({"role": "assistant", "content": ""})]

    def emit(self, event: Event) -> list[bytes]:
        if isinstance(event, TextDelta):
            return [self._chunk({"content": event.text})]
        if isinstance(event, ToolStarted):
            index = self.slots.setdefault(event.slot, len(self.slots))
            fn = {"name": event.name, "arguments": ""}
            call = {"index": index, "id": event.id, "type": "function", "function": fn}
            return [self._chunk({"tool_calls": [call]})]
        if isinstance(event, ToolDelta):
            args = {
                "index": self.slots.get(event.slot, 0),
                "function": {"arguments": event.arguments},
            }
            return [self._chunk({"tool_calls": [args]})]
        if isinstance(event, Finished):
            return [self._chunk({}, chat.STOP_TO_FINISH[self.final_stop()])]
        if isinstance(event, Ended):
            usage = {**self.base, "choices": [], "usage": chat.write_usage(event.meter)}
            return [encode_data(usage), DONE]
        return []

    def fail(self, message: str) -> list[bytes]:
        return [encode_data({"error": {"message": message, "type": "api_error", "code": None}})]


class MessagesWriter(Writer):
    def __init__(self) -> None:
        super().__init__()
        self.open: int | None = None
        self.open_kind = ""
        self.next_index = 0
        self.slots: dict[int, int] = {}

    def _event(self, name: str, **fields: object) -> bytes:
        return encode_event(name, {"type": name, **fields})

    def begin(self, event: Started) -> list[bytes]:
        self.started = True
        message: JSON = {
            "id": event.id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": event.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [self._event("message_start", message=message)]

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        index, self.open, self.open_kind = self.open, None, ""
        return [self._event("content_block_stop", index=index)]

    def _open(self, block: JSON) -> list[bytes]:
        out = self._close()
        self.open, self.open_kind = self.next_index, str(block["type"])
        self.next_index += 1
        return [*out, self._event("content_block_start", index=self.open, content_block=block)]

    def emit(self, event: Event) -> list[bytes]:
        if isinstance(event, TextDelta):
            out = [] if self.open_kind == "text" else self._open({"type": "text", "text": ""})
            delta = {"type": "text_delta", "text": event.text}
            return [*out, self._event("content_block_delta", index=self.open, delta=delta)]
        if isinstance(event, ToolStarted):
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            out = self._open(block)
            self.slots[event.slot] = self.next_index - 1
            return out
        if isinstance(event, ToolDelta):
            delta = {"type": "input_json_delta", "partial_json": event.arguments}
            index = self.slots.get(event.slot, self.next_index - 1)
            return [self._event("content_block_delta", index=index, delta=delta)]
        if isinstance(event, Ended):
            stop = {"stop_reason": messages.STOP_TO[self.final_stop()], "stop_sequence": None}
            usage = messages.write_usage(event.meter)
            return [
                *self._close(),
                self._event("message_delta", delta=stop, usage=usage),
                self._event("message_stop"),
            ]
        return []

    def fail(self, message: str) -> list[bytes]:
        return [self._event("error", error={"type": "api_error", "message": message})]


class ResponsesWriter(Writer):
    """``response.created`` ... ``response.completed``, with every item opened and closed.

    For a compaction (``compaction=True``) the model's text is not streamed: it is gathered and
    sent at the end as the one compaction item Codex expects, and the response completes even
    if the summary was cut short.
    """

    def __init__(self, *, compaction: bool = False) -> None:
        super().__init__()
        self.compaction = compaction
        self.summary: list[str] = []
        self.id = responses.new_id("resp")
        self.model = ""
        self.sequence = 0
        self.items: list[JSON] = []
        """Every output item in order, as its ``output_item.done`` will show it."""
        self.text_at: int | None = None
        self.calls: dict[int, int] = {}
        self.open_calls: list[int] = []

    def _event(self, name: str, **fields: object) -> bytes:
        data = {"type": name, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return encode_event(name, data)

    def _response(self, stop: StopReason | None = None, ended: Ended | None = None) -> JSON:
        meter = ended.meter if ended else None
        return responses.response_object(self.id, self.model, self.items, stop=stop, meter=meter)

    def begin(self, event: Started) -> list[bytes]:
        self.started = True
        self.model = event.model
        snapshot = responses.response_object(self.id, self.model, [])
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def _close_text(self) -> list[bytes]:
        if self.text_at is None:
            return []
        index, self.text_at = self.text_at, None
        item = self.items[index]
        item["status"] = "completed"
        part = item["content"][0]
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [
            self._event("response.output_text.done", **where, text=part["text"], logprobs=[]),
            self._event("response.content_part.done", **where, part=part),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _open_text(self) -> list[bytes]:
        index = len(self.items)
        item = responses.message_item("", responses.new_id("msg"), "in_progress")
        added = self._event("response.output_item.added", output_index=index, item=dict(item))
        self.items.append(item)
        self.text_at = index
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        item["content"] = [part]
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [added, self._event("response.content_part.added", **where, part=dict(part))]

    def _close_calls(self) -> list[bytes]:
        out: list[bytes] = []
        for index in self.open_calls:
            item = self.items[index]
            item["status"] = "completed"
            where = {"item_id": item["id"], "output_index": index}
            out.append(
                self._event(
                    "response.function_call_arguments.done", **where, arguments=item["arguments"]
                )
            )
            out.append(self._event("response.output_item.done", output_index=index, item=item))
        self.open_calls = []
        return out

    def _compaction(self, event: Event) -> list[bytes]:
        if isinstance(event, TextDelta):
            self.summary.append(event.text)
        if not isinstance(event, Ended):
            return []
        item = compaction.item("".join(self.summary), responses.new_id("cmp"))
        self.items.append(item)
        return [
            self._event("response.output_item.added", output_index=0, item=item),
            self._event("response.output_item.done", output_index=0, item=item),
            self._event("response.completed", response=self._response("end", event)),
        ]

    def emit(self, event: Event) -> list[bytes]:
        if self.compaction:
            return self._compaction(event)
        if isinstance(event, TextDelta):
            out = [] if self.text_at is not None else self._open_text()
            item = self.items[self.text_at or 0]
            item["content"][0]["text"] += event.text
            where = {"item_id": item["id"], "output_index": self.text_at, "content_index": 0}
            return [
                *out,
                self._event("response.output_text.delta", **where, delta=event.text, logprobs=[]),
            ]
        if isinstance(event, ToolStarted):
            out = self._close_text()
            index = len(self.items)
            call = ToolCall(event.id, event.name, "")
            item = responses.call_item(call, responses.new_id("fc"), "in_progress")
            self.items.append(item)
            self.calls[event.slot] = index
            self.open_calls.append(index)
            return [
                *out,
                self._event("response.output_item.added", output_index=index, item=dict(item)),
            ]
        if isinstance(event, ToolDelta) and event.slot in self.calls:
            index = self.calls[event.slot]
            self.items[index]["arguments"] += event.arguments
            where = {"item_id": self.items[index]["id"], "output_index": index}
            return [
                self._event(
                    "response.function_call_arguments.delta", **where, delta=event.arguments
                )
            ]
        if isinstance(event, Ended):
            stop = self.final_stop()
            out = [*self._close_text(), *self._close_calls()]
            name = "response.completed" if stop in ("end", "tool_use") else "response.incomplete"
            return [*out, self._event(name, response=self._response(stop, event))]
        return []

    def fail(self, message: str) -> list[bytes]:
        failed = {**self._response(), "status": "failed"}
        failed["error"] = {"code": "server_error", "message": message}
        return [self._event("response.failed", response=failed)]
