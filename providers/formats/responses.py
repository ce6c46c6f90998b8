"""The OpenAI Responses API, read into and written from the internal form.

Only what other formats can express is read: messages, function calls and their outputs,
function tools. Reasoning items are dropped (they are encrypted for one provider); built-in
tools and other item types are refused, because only a Responses target can honour them and
there the body passes through untouched. Usage counts cache reads and writes inside
``input_tokens`` and reasoning inside ``output_tokens``, like chat completions.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from providers.formats import compaction
from providers.formats.hub import (
    FORCED,
    JSON,
    Image,
    Meter,
    Part,
    Reply,
    Request,
    StopReason,
    Text,
    Tool,
    ToolCall,
    ToolResult,
    Untranslatable,
    arguments_json,
    as_dict,
    as_list,
    stop_of,
)
from workflows.contracts import Usage

_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# ---- usage ------------------------------------------------------------------------------------


def read_usage(raw: Any) -> Meter:
    raw = as_dict(raw)
    details = as_dict(raw.get("input_tokens_details"))
    cached = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_write_tokens") or 0)
    usage = Usage(
        input_tokens=max(int(raw.get("input_tokens") or 0) - cached - written, 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cached_input_tokens=cached,
        cache_write_tokens=written,
    )
    reasoning = as_dict(raw.get("output_tokens_details")).get("reasoning_tokens")
    return Meter(usage, int(reasoning or 0))


TOOL_ITEMS = {
    "web_search_call": "web_searches",
    "file_search_call": "file_searches",
    "code_interpreter_call": "code_executions",
}
"""Output items of built-in tools the provider bills per call, and the ``Usage`` count of each."""


def tool_counts(items: Any) -> dict[str, int]:
    """How many billed tool calls ``items`` (a response's output) hold, by ``Usage`` count."""
    counts = dict.fromkeys(TOOL_ITEMS.values(), 0)
    for item in as_list(items):
        count = TOOL_ITEMS.get(str(as_dict(item).get("type")))
        if count:
            counts[count] += 1
    return counts


def body_usage(body: JSON) -> Usage:
    """A whole response's usage, with its built-in tool calls counted from its output."""
    return replace(read_usage(body.get("usage")).usage, **tool_counts(body.get("output")))


def write_usage(meter: Meter) -> JSON:
    u = meter.usage
    total_in = u.input_tokens + u.cached_input_tokens + u.cache_write_tokens
    return {
        "input_tokens": total_in,
        "input_tokens_details": {
            "cached_tokens": u.cached_input_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": meter.reasoning_tokens},
        "total_tokens": total_in + u.output_tokens,
    }


# ---- requests ---------------------------------------------------------------------------------


def _content(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    parts: list[Part] = []
    for part in as_list(content):
        part = as_dict(part)
        kind = part.get("type")
        if kind in _TEXT_PARTS or kind == "refusal":
            text = part.get("text", part.get("refusal"))
            parts += [Text(str(text))] if text else []
        elif kind == "input_image" and part.get("image_url"):
            parts.append(Image(str(part["image_url"])))
        else:
            raise Untranslatable(f"content part {kind!r} can only go to a Responses target")
    return parts


def _read_item(req: Request, item: JSON) -> None:
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        parts = _content(item.get("content"))
        if role in ("system", "developer"):
            req.add("system", [Text("".join(p.text for p in parts if isinstance(p, Text)))])
        elif role == "assistant":
            req.add("assistant", [p for p in parts if isinstance(p, Text)])
        else:
            req.add("user", parts)
    elif kind == "function_call":
        args = arguments_json(item.get("arguments"))
        req.add(
            "assistant", [ToolCall(str(item.get("call_id", "")), str(item.get("name", "")), args)]
        )
    elif kind == "function_call_output":
        output = item.get("output")
        text = (
            output
            if isinstance(output, str)
            else "".join(p.text for p in _content(output) if isinstance(p, Text))
        )
        req.add("user", [ToolResult(str(item.get("call_id", "")), text)])
    elif kind == compaction.TRIGGER:
        req.compaction = True
    elif kind in compaction.ITEM_TYPES:
        summary = compaction.summary_of(item)
        if summary is None:
            raise Untranslatable(
                "a compaction item written by the provider is encrypted for it, so only a "
                "Responses target can read it"
            )
        req.add("user", [Text(compaction.HANDOFF + summary)])
    elif kind != "reasoning":
        raise Untranslatable(f"input item type {kind!r} can only go to a Responses target")


def read_request(body: JSON) -> Request:
    req = Request()
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        req.add("system", [Text(body["instructions"])])
    given = body.get("input")
    if isinstance(given, str):
        req.add("user", [Text(given)])
    for item in as_list(given):
        if req.compaction:
            raise Untranslatable("the compaction trigger must be the last input item")
        _read_item(req, as_dict(item))
    for tool in as_list(body.get("tools")):
        tool = as_dict(tool)
        if tool.get("type") != "function":
            raise Untranslatable(
                f"tool type {tool.get('type')!r} can only go to a Responses target"
            )
        params = as_dict(tool.get("parameters")) or {"type": "object", "properties": {}}
        req.tools.append(
            Tool(str(tool.get("name", "")), str(tool.get("description") or ""), params)
        )
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        req.tool_choice = choice
    elif isinstance(choice, dict):
        if choice.get("type") != "function":
            raise Untranslatable(f"tool_choice {choice.get('type')!r} needs a Responses target")
        req.tool_choice = str(choice.get("name", ""))
    req.parallel_tool_calls = body.get("parallel_tool_calls")
    req.max_tokens = body.get("max_output_tokens")
    req.temperature = body.get("temperature")
    req.top_p = body.get("top_p")
    req.reasoning_effort = as_dict(body.get("reasoning")).get("effort")
    req.user = str(body.get("safety_identifier") or body.get("user") or "")
    req.prompt_cache_key = body.get("prompt_cache_key")
    if req.compaction:
        # The target writes the summary that runcap then carries in the compaction item.
        req.add("user", [Text(compaction.PROMPT)])
        req.tool_choice = "none" if req.tools else None
    return req


def _items(parts: list[Part], role: str) -> list[JSON]:
    items: list[JSON] = []
    content: list[JSON] = []
    for p in parts:
        if isinstance(p, Text):
            kind = "output_text" if role == "assistant" else "input_text"
            extra: JSON = {"annotations": []} if role == "assistant" else {}
            content.append({"type": kind, "text": p.text, **extra})
        elif isinstance(p, Image):
            content.append({"type": "input_image", "image_url": p.url, "detail": "auto"})
        elif isinstance(p, ToolCall):
            items.append(
                {"type": "function_call", "call_id": p.id, "name": p.name, "arguments": p.arguments}
            )
        else:
            items.append({"type": "function_call_output", "call_id": p.call_id, "output": p.text})
    if content:
        message = {"type": "message", "role": role, "content": content}
        # A reply's text comes before its calls; a user's text comes after the tool outputs.
        items = [message, *items] if role == "assistant" else [*items, message]
    return items


def write_request(req: Request) -> JSON:
    """A Responses body. Stop sequences have no Responses field and are left out."""
    items: list[JSON] = []
    for turn in req.turns:
        if turn.role == "system":
            items.append({"type": "message", "role": "system", "content": turn.text()})
        else:
            items += _items(turn.parts, turn.role)
    # runcap keeps no responses, so the provider need not either.
    out: JSON = {"input": items, "store": False}
    if req.tools:
        # ``strict`` defaults to true on Responses, which would reject loose chat-style schemas.
        out["tools"] = [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
                "strict": False,
            }
            for t in req.tools
        ]
        if req.tool_choice in FORCED:
            out["tool_choice"] = req.tool_choice
        elif req.tool_choice:
            out["tool_choice"] = {"type": "function", "name": req.tool_choice}
        if req.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = req.parallel_tool_calls
    if req.max_tokens is not None:
        out["max_output_tokens"] = req.max_tokens
    for name in ("temperature", "top_p", "prompt_cache_key"):
        if getattr(req, name) is not None:
            out[name] = getattr(req, name)
    if req.reasoning_effort:
        out["reasoning"] = {"effort": req.reasoning_effort}
    return out


# ---- answers ----------------------------------------------------------------------------------


def read_reply(body: JSON) -> Reply:
    parts: list[Text | ToolCall] = []
    for item in as_list(body.get("output")):
        item = as_dict(item)
        if item.get("type") == "message":
            for part in as_list(item.get("content")):
                text = as_dict(part).get("text", as_dict(part).get("refusal"))
                parts += [Text(str(text))] if text else []
        elif item.get("type") == "function_call":
            args = arguments_json(item.get("arguments"))
            parts.append(ToolCall(str(item.get("call_id", "")), str(item.get("name", "")), args))
    meter = read_usage(body.get("usage"))
    stop = stop_of(parts, stop_from(body))
    return Reply(str(body.get("id", "")), str(body.get("model", "")), parts, stop, meter)


def stop_from(response: JSON) -> StopReason:
    if response.get("status") != "incomplete":
        return "end"
    reason = as_dict(response.get("incomplete_details")).get("reason")
    return "refusal" if reason == "content_filter" else "length"


def message_item(text: str, item_id: str, status: str = "completed") -> JSON:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": status,
        "content": [part] if status == "completed" else [],
    }


def call_item(call: ToolCall, item_id: str, status: str = "completed") -> JSON:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def response_object(
    response_id: str,
    model: str,
    output: list[JSON],
    *,
    stop: StopReason | None = None,
    meter: Meter | None = None,
) -> JSON:
    """The ``response`` object; ``stop`` None means still in progress."""
    status = "in_progress" if stop is None else "completed"
    details = None
    if stop in ("length", "refusal"):
        status = "incomplete"
        details = {"reason": "max_output_tokens" if stop == "length" else "content_filter"}
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": details,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": write_usage(meter) if meter is not None else None,
    }


def write_compaction(reply: Reply) -> JSON:
    """The answer to a compaction request: exactly one compaction item, carrying the model's
    text. A summary cut short is still a summary, so the response completes either way."""
    output = [compaction.item(reply.text(), new_id("cmp"))]
    return response_object(new_id("resp"), reply.model, output, stop="end", meter=reply.meter)


def write_reply(reply: Reply) -> JSON:
    output: list[JSON] = []
    if reply.text():
        output.append(message_item(reply.text(), new_id("msg")))
    output += [call_item(c, new_id("fc")) for c in reply.tool_calls()]
    stop = stop_of(reply.parts, reply.stop)
    return response_object(new_id("resp"), reply.model, output, stop=stop, meter=reply.meter)
