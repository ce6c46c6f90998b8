"""Anthropic messages, read into and written from the internal form.

Written bodies carry only fields Anthropic knows, because it rejects unknown ones. Thinking
blocks are signed for one provider and are dropped when a conversation changes format.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from providers.formats.hub import (
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
    arguments_object,
    as_dict,
    as_list,
    stop_of,
)
from workflows.contracts import Usage

STOP_FROM: dict[str, StopReason] = {
    "end_turn": "end",
    "stop_sequence": "end",
    "pause_turn": "end",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_use",
    "refusal": "refusal",
}
STOP_TO: dict[StopReason, str] = {
    "end": "end_turn",
    "length": "max_tokens",
    "tool_use": "tool_use",
    "refusal": "refusal",
}
_DROPPED = ("thinking", "redacted_thinking")
_ANSWER = ("text", "tool_use")


# ---- usage ------------------------------------------------------------------------------------


CODE_EXECUTION = ("code_execution", "bash_code_execution", "text_editor_code_execution")
"""Names of the server tool calls that run code (``server_tool_use`` blocks)."""


def read_usage(raw: Any, base: Usage | None = None) -> Meter:
    """Anthropic counts cache reads and writes apart, one-hour writes within the writes, and
    web searches under ``server_tool_use``; absent fields keep ``base``'s values."""
    raw = as_dict(raw)
    base = base or Usage()

    def pick(name: str, old: int, within: JSON = raw) -> int:
        value = within.get(name)
        return old if value is None else int(value)

    hour = pick(
        "ephemeral_1h_input_tokens", base.cache_write_1h_tokens, as_dict(raw.get("cache_creation"))
    )
    written = pick("cache_creation_input_tokens", base.cache_write_tokens)
    server = as_dict(raw.get("server_tool_use"))
    usage = replace(
        base,
        input_tokens=pick("input_tokens", base.input_tokens),
        output_tokens=pick("output_tokens", base.output_tokens),
        cached_input_tokens=pick("cache_read_input_tokens", base.cached_input_tokens),
        cache_write_tokens=max(written, hour),
        cache_write_1h_tokens=hour,
        web_searches=pick("web_search_requests", base.web_searches, server),
    )
    return Meter(usage)


def runs_code(block: Any) -> bool:
    """A ``server_tool_use`` block that runs code in Anthropic's container."""
    block = as_dict(block)
    return block.get("type") == "server_tool_use" and block.get("name") in CODE_EXECUTION


def body_usage(body: JSON) -> Usage:
    """A whole answer's usage, with its code runs counted from its blocks."""
    usage = read_usage(body.get("usage")).usage
    runs = sum(1 for block in as_list(body.get("content")) if runs_code(block))
    return replace(usage, code_executions=max(usage.code_executions, runs))


def write_usage(meter: Meter) -> JSON:
    u = meter.usage
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cached_input_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
    }


# ---- requests ---------------------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        str(b.get("text", "")) for b in as_list(content) if as_dict(b).get("type") == "text"
    )


def _image(block: JSON) -> Image:
    src = as_dict(block.get("source"))
    if src.get("type") == "base64":
        return Image(f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}")
    if src.get("type") == "url":
        return Image(str(src.get("url", "")))
    raise Untranslatable(f"image source {src.get('type')!r} has no equivalent in other formats")


def _parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    parts: list[Part] = []
    for block in as_list(content):
        block = as_dict(block)
        kind = block.get("type")
        if kind == "text":
            parts += [Text(str(block["text"]))] if block.get("text") else []
        elif kind == "image":
            parts.append(_image(block))
        elif kind == "tool_use":
            args = arguments_json(block.get("input"))
            parts.append(ToolCall(str(block.get("id", "")), str(block.get("name", "")), args))
        elif kind == "tool_result":
            text = _text(block.get("content"))
            parts.append(
                ToolResult(str(block.get("tool_use_id", "")), text, bool(block.get("is_error")))
            )
        elif kind not in _DROPPED:
            raise Untranslatable(f"content block {kind!r} has no equivalent in other formats")
    return parts


def _tool(raw: Any) -> Tool:
    raw = as_dict(raw)
    if "input_schema" not in raw or raw.get("type") not in (None, "custom"):
        raise Untranslatable(f"tool type {raw.get('type')!r} can only go to Anthropic")
    return Tool(str(raw.get("name", "")), str(raw.get("description") or ""), raw["input_schema"])


def read_request(body: JSON) -> Request:
    req = Request()
    if body.get("system"):
        req.add("system", [Text(_text(body["system"]))])
    for msg in as_list(body.get("messages")):
        msg = as_dict(msg)
        role = msg.get("role")
        parts = _parts(msg.get("content"))
        if role == "system":  # a mid-conversation system turn (Claude Code sends them)
            req.add("system", [Text("".join(p.text for p in parts if isinstance(p, Text)))])
        else:
            req.add("assistant" if role == "assistant" else "user", parts)
    req.tools = [_tool(t) for t in as_list(body.get("tools"))]
    choice = as_dict(body.get("tool_choice"))
    kind = choice.get("type")
    if kind:
        req.tool_choice = {"any": "required", "none": "none", "auto": "auto"}.get(
            str(kind), str(choice.get("name", ""))
        )
    if choice.get("disable_parallel_tool_use"):
        req.parallel_tool_calls = False
    req.max_tokens = body.get("max_tokens")
    req.temperature = body.get("temperature")
    req.top_p = body.get("top_p")
    req.stop = [str(s) for s in as_list(body.get("stop_sequences"))]
    req.user = str(as_dict(body.get("metadata")).get("user_id") or "")
    return req


def _blocks(parts: list[Part]) -> list[JSON]:
    blocks: list[JSON] = []
    for p in parts:
        if isinstance(p, Text):
            blocks += [{"type": "text", "text": p.text}] if p.text else []
        elif isinstance(p, Image):
            if p.url.startswith("data:") and ";base64," in p.url:
                media, data = p.url[5:].split(";base64,", 1)
                source = {"type": "base64", "media_type": media, "data": data}
            else:
                source = {"type": "url", "url": p.url}
            blocks.append({"type": "image", "source": source})
        elif isinstance(p, ToolCall):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": p.id,
                    "name": p.name,
                    "input": arguments_object(p.arguments),
                }
            )
        else:
            result: JSON = {"type": "tool_result", "tool_use_id": p.call_id, "content": p.text}
            blocks.append({**result, "is_error": True} if p.is_error else result)
    return blocks


def write_request(req: Request) -> JSON:
    """Every system turn joins the top-level ``system``; turns alternate, as Anthropic wants."""
    system = [t.text() for t in req.turns if t.role == "system"]
    messages: list[JSON] = []
    for turn in req.turns:
        blocks = _blocks(turn.parts) if turn.role != "system" else []
        if not blocks:
            continue
        if messages and messages[-1]["role"] == turn.role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": turn.role, "content": blocks})
    out: JSON = {"messages": messages}
    if any(system):
        out["system"] = "\n\n".join(s for s in system if s)
    if req.max_tokens is not None:
        out["max_tokens"] = req.max_tokens
    if req.stop:
        out["stop_sequences"] = req.stop
    if req.temperature is not None:
        out["temperature"] = min(float(req.temperature), 1.0)
    if req.top_p is not None:
        out["top_p"] = req.top_p
    if req.tools:
        out["tools"] = [
            {
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "input_schema": t.parameters,
            }
            for t in req.tools
        ]
        choice: JSON | None = None
        if req.tool_choice is not None:
            kind = {"required": "any", "none": "none", "auto": "auto"}.get(req.tool_choice)
            choice = {"type": kind} if kind else {"type": "tool", "name": req.tool_choice}
        if req.parallel_tool_calls is False:
            choice = choice or {"type": "auto"}
            if choice["type"] != "none":
                choice["disable_parallel_tool_use"] = True
        if choice is not None:
            out["tool_choice"] = choice
    if req.user:
        out["metadata"] = {"user_id": req.user}
    return out


# ---- answers ----------------------------------------------------------------------------------


def read_reply(body: JSON) -> Reply:
    # Only text and tool calls are an answer's own; anything else (thinking) stays behind.
    blocks = [b for b in as_list(body.get("content")) if as_dict(b).get("type") in _ANSWER]
    parts = [p for p in _parts(blocks) if isinstance(p, Text | ToolCall)]
    stop = STOP_FROM.get(str(body.get("stop_reason")), "end")
    meter = read_usage(body.get("usage"))
    return Reply(str(body.get("id", "")), str(body.get("model", "")), parts, stop, meter)


def write_reply(reply: Reply) -> JSON:
    return {
        "id": reply.id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": _blocks(list(reply.parts)),
        "stop_reason": STOP_TO[stop_of(reply.parts, reply.stop)],
        "stop_sequence": None,
        "usage": write_usage(reply.meter),
    }
