"""The fake's answers on the wire, in each format, whole or as a stream of SSE events.

Written apart from the adapters' translation code on purpose: the fake stands in for the real
providers, so sharing their mapping would hide the adapters' mistakes.
"""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

from fake_provider.render_responses import render_responses_body
from fake_provider.script import Answer, FakeFormat, compact
from providers.sse import DONE, encode_data, encode_event

JSON = dict[str, Any]
_ids = itertools.count(1)
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(api: FakeFormat, status: int, message: str) -> JSON:
    """The provider's error envelope for ``status``."""
    kind = _ERROR_TYPES.get(status, "api_error")
    if api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _openai_usage(a: Answer) -> JSON:
    return {
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.completion_tokens,
        "total_tokens": a.prompt_tokens + a.completion_tokens,
        "prompt_tokens_details": {
            "cached_tokens": a.cached_tokens,
            "cache_write_tokens": a.cache_write_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": a.reasoning_tokens},
    }


def _anthropic_usage(a: Answer) -> JSON:
    usage: JSON = {
        "input_tokens": a.prompt_tokens - a.cached_tokens - a.cache_write_tokens,
        "output_tokens": a.completion_tokens,
        "cache_read_input_tokens": a.cached_tokens,
        "cache_creation_input_tokens": a.cache_write_tokens,
    }
    if a.web_searches:
        usage["server_tool_use"] = {"web_search_requests": a.web_searches}
    return usage


def _tool_json(a: Answer) -> str:
    return compact(a.tool.arguments_json()).decode() if a.tool else ""


def render_body(api: FakeFormat, model: str, a: Answer) -> JSON:
    """A whole non-streaming answer."""
    if api == "responses":
        return render_responses_body(model, a)
    n = next(_ids)
    if api == "anthropic":
        content: list[JSON] = [{"type": "text", "text": a.text}] if a.text else []
        if a.tool:
            content.append(
                {
                    "type": "tool_use",
                    "id": a.tool.id,
                    "name": a.tool.name,
                    "input": a.tool.arguments_json(),
                }
            )
        return {
            "id": f"msg_fake_{n}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": _STOP[a.finish],
            "stop_sequence": None,
            "usage": _anthropic_usage(a),
        }
    message: JSON = {"role": "assistant", "content": a.text or None}
    if a.tool:
        fn = {"name": a.tool.name, "arguments": _tool_json(a)}
        message["tool_calls"] = [{"id": a.tool.id, "type": "function", "function": fn}]
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": a.finish}],
        "usage": _openai_usage(a),
    }


def _pieces(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


def _halves(text: str) -> list[str]:
    mid = len(text) // 2
    return [p for p in (text[:mid], text[mid:]) if p]


def render_openai_stream(model: str, a: Answer, include_usage: bool) -> list[bytes]:
    """OpenAI chunks: role, content, tool call, finish, optional usage, ``[DONE]``."""
    base = {
        "id": f"chatcmpl-fake-{next(_ids)}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: JSON, finish: str | None = None) -> bytes:
        return encode_data(
            {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        )

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in _pieces(a.text)]
    if a.tool:
        head = {"index": 0, "id": a.tool.id, "type": "function"}
        out.append(
            chunk({"tool_calls": [{**head, "function": {"name": a.tool.name, "arguments": ""}}]})
        )
        for part in _halves(_tool_json(a)):
            out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
    out.append(chunk({}, a.finish))
    if include_usage:
        out.append(encode_data({**base, "choices": [], "usage": _openai_usage(a)}))
    out.append(DONE)
    return out


def render_anthropic_stream(model: str, a: Answer) -> list[bytes]:
    """Anthropic events: message_start, content blocks, message_delta, message_stop."""
    usage = _anthropic_usage(a)
    start: JSON = {
        "id": f"msg_fake_{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        # Searches are reported at the end, as Anthropic does: they happen during the answer.
        "usage": {**{k: v for k, v in usage.items() if k != "server_tool_use"}, "output_tokens": 1},
    }
    out = [encode_event("message_start", {"type": "message_start", "message": start})]

    def event(name: str, **fields: Any) -> None:
        out.append(encode_event(name, {"type": name, **fields}))

    index = 0
    if a.text:
        event("content_block_start", index=index, content_block={"type": "text", "text": ""})
        event("ping")
        for piece in _pieces(a.text):
            event("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
        event("content_block_stop", index=index)
        index += 1
    if a.tool:
        block = {"type": "tool_use", "id": a.tool.id, "name": a.tool.name, "input": {}}
        event("content_block_start", index=index, content_block=block)
        for part in _halves(_tool_json(a)):
            delta = {"type": "input_json_delta", "partial_json": part}
            event("content_block_delta", index=index, delta=delta)
        event("content_block_stop", index=index)
    stop: JSON = {"stop_reason": _STOP[a.finish], "stop_sequence": None}
    final = {k: v for k, v in usage.items() if k in ("output_tokens", "server_tool_use")}
    event("message_delta", delta=stop, usage={**final, "output_tokens": a.completion_tokens})
    event("message_stop")
    return out


def models_body(models: list[str]) -> JSON:
    """``GET /v1/models`` in a shape both SDKs accept."""
    data = [
        {
            "id": m,
            "object": "model",
            "type": "model",
            "display_name": m,
            "created": 0,
            "owned_by": "runcap-fake",
        }
        for m in models
    ]
    return {"object": "list", "data": data, "has_more": False}
