"""OpenAI chat completions, read into and written from the internal form.

Usage: ``prompt_tokens`` include cache reads and writes, runcap's ``input_tokens`` do not;
``completion_tokens`` include reasoning tokens, which are billed as output.
"""

from __future__ import annotations

import time
from typing import Any

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
    Turn,
    Untranslatable,
    arguments_json,
    as_dict,
    as_list,
    stop_of,
)
from workflows.contracts import Usage

FINISH_TO_STOP: dict[str, StopReason] = {
    "stop": "end",
    "length": "length",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
STOP_TO_FINISH: dict[StopReason, str] = {
    "end": "stop",
    "length": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


# ---- usage ------------------------------------------------------------------------------------


def read_usage(raw: Any) -> Meter:
    raw = as_dict(raw)
    details = as_dict(raw.get("prompt_tokens_details"))
    cached = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_write_tokens") or 0)
    prompt = int(raw.get("prompt_tokens") or 0)
    usage = Usage(
        input_tokens=max(prompt - cached - written, 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_input_tokens=cached,
        cache_write_tokens=written,
    )
    reasoning = as_dict(raw.get("completion_tokens_details")).get("reasoning_tokens")
    return Meter(usage, int(reasoning or 0))


def body_usage(body: JSON) -> Usage:
    """A whole answer's usage (chat completions bills no per-use tools runcap lets through)."""
    return read_usage(body.get("usage")).usage


def write_usage(meter: Meter) -> JSON:
    u = meter.usage
    prompt = u.input_tokens + u.cached_input_tokens + u.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": u.cached_input_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": meter.reasoning_tokens},
    }


# ---- requests ---------------------------------------------------------------------------------


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        str(p.get("text", "")) for p in as_list(content) if as_dict(p).get("type") == "text"
    )


def _user_parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    parts: list[Part] = []
    for part in as_list(content):
        part = as_dict(part)
        kind = part.get("type")
        if kind == "text":
            parts += [Text(str(part["text"]))] if part.get("text") else []
        elif kind == "image_url":
            parts.append(Image(str(as_dict(part.get("image_url")).get("url", ""))))
        else:
            raise Untranslatable(f"chat content part {kind!r} has no equivalent in other formats")
    return parts


def _assistant_parts(msg: JSON) -> list[Part]:
    text = text_of(msg.get("content"))
    parts: list[Part] = [Text(text)] if text else []
    for call in as_list(msg.get("tool_calls")):
        call = as_dict(call)
        fn = as_dict(call.get("function"))
        args = arguments_json(fn.get("arguments"))
        parts.append(ToolCall(str(call.get("id", "")), str(fn.get("name", "")), args))
    return parts


def _tool(raw: Any) -> Tool:
    raw = as_dict(raw)
    if raw.get("type") != "function":
        raise Untranslatable(
            f"tool type {raw.get('type')!r} can only go to a chat-completions target"
        )
    fn = as_dict(raw.get("function"))
    params = as_dict(fn.get("parameters")) or {"type": "object", "properties": {}}
    return Tool(str(fn.get("name", "")), str(fn.get("description") or ""), params)


def read_request(body: JSON) -> Request:
    req = Request()
    for msg in as_list(body.get("messages")):
        msg = as_dict(msg)
        role = msg.get("role")
        if role in ("system", "developer"):
            req.add("system", [Text(text_of(msg.get("content")))])
        elif role == "assistant":
            req.add("assistant", _assistant_parts(msg))
        elif role == "tool":
            result = ToolResult(str(msg.get("tool_call_id", "")), text_of(msg.get("content")))
            req.add("user", [result])
        else:
            req.add("user", _user_parts(msg.get("content")))
    req.tools = [_tool(t) for t in as_list(body.get("tools"))]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        req.tool_choice = str(as_dict(choice.get("function")).get("name", ""))
    elif choice is not None:
        req.tool_choice = str(choice)
    req.parallel_tool_calls = body.get("parallel_tool_calls")
    cap = body.get("max_completion_tokens", body.get("max_tokens"))
    req.max_tokens = int(cap) if cap is not None else None
    req.temperature = body.get("temperature")
    req.top_p = body.get("top_p")
    stop = body.get("stop")
    req.stop = [stop] if isinstance(stop, str) else [str(s) for s in as_list(stop)]
    req.user = str(body.get("user") or body.get("safety_identifier") or "")
    req.reasoning_effort = body.get("reasoning_effort")
    req.prompt_cache_key = body.get("prompt_cache_key")
    return req


def _message(turn: Turn) -> list[JSON]:
    if turn.role == "system":
        return [{"role": "system", "content": turn.text()}]
    if turn.role == "assistant":
        out: JSON = {"role": "assistant", "content": turn.text() or None}
        calls = [
            {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments}}
            for p in turn.parts
            if isinstance(p, ToolCall)
        ]
        if calls:
            out["tool_calls"] = calls
        return [out]
    # Tool results are ``role: tool`` messages, which must come right after the calls.
    messages: list[JSON] = [
        {"role": "tool", "tool_call_id": p.call_id, "content": p.text}
        for p in turn.parts
        if isinstance(p, ToolResult)
    ]
    content: list[JSON] = []
    for p in turn.parts:
        if isinstance(p, Text):
            content.append({"type": "text", "text": p.text})
        elif isinstance(p, Image):
            content.append({"type": "image_url", "image_url": {"url": p.url}})
    if content:
        simple = len(content) == 1 and content[0]["type"] == "text"
        messages.append({"role": "user", "content": content[0]["text"] if simple else content})
    return messages


def write_request(req: Request) -> JSON:
    out: JSON = {"messages": [m for turn in req.turns for m in _message(turn)]}
    if req.tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": t.parameters,
                },
            }
            for t in req.tools
        ]
        if req.tool_choice in FORCED:
            out["tool_choice"] = req.tool_choice
        elif req.tool_choice:
            out["tool_choice"] = {"type": "function", "function": {"name": req.tool_choice}}
        if req.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = req.parallel_tool_calls
    if req.max_tokens is not None:
        out["max_tokens"] = req.max_tokens
    for name in ("temperature", "top_p", "reasoning_effort", "prompt_cache_key"):
        if getattr(req, name) is not None:
            out[name] = getattr(req, name)
    if req.stop:
        out["stop"] = req.stop
    if req.user:
        out["user"] = req.user
    return out


# ---- answers ----------------------------------------------------------------------------------


def read_reply(body: JSON) -> Reply:
    """The first choice of a chat completion."""
    choice = as_dict((as_list(body.get("choices")) or [{}])[0])
    message = as_dict(choice.get("message"))
    parts = [p for p in _assistant_parts(message) if isinstance(p, Text | ToolCall)]
    refusal = message.get("refusal")
    if refusal and not parts:
        parts = [Text(str(refusal))]
    stop = FINISH_TO_STOP.get(str(choice.get("finish_reason")), "end")
    meter = read_usage(body.get("usage"))
    return Reply(str(body.get("id", "")), str(body.get("model", "")), parts, stop, meter)


def write_reply(reply: Reply) -> JSON:
    calls = reply.tool_calls()
    text = reply.text()
    message: JSON = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    finish = STOP_TO_FINISH[stop_of(reply.parts, reply.stop)]
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": write_usage(reply.meter),
    }
