"""The fake's answers as the OpenAI Responses API gives them: a ``response`` object, or its
event stream from ``response.created`` to ``response.completed``.

Written apart from the adapters' Responses writer on purpose, for the same reason as
``render``: the fake stands in for the real provider.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from fake_provider.script import Answer, compact, seal
from providers.sse import encode_event

JSON = dict[str, Any]
_ids = itertools.count(1)


def _usage(a: Answer) -> JSON:
    return {
        "input_tokens": a.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": a.cached_tokens,
            "cache_write_tokens": a.cache_write_tokens,
        },
        "output_tokens": a.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": a.reasoning_tokens},
        "total_tokens": a.prompt_tokens + a.completion_tokens,
    }


def _items(a: Answer, n: int) -> list[JSON]:
    if a.compaction is not None:
        return [
            {"type": "compaction", "id": f"cmp_fake_{n}", "encrypted_content": seal(a.compaction)}
        ]
    items: list[JSON] = [
        {"type": "web_search_call", "id": f"ws_fake_{n}_{k}", "status": "completed"}
        for k in range(a.web_searches)
    ]
    if a.reasoning_tokens:
        # Real reasoning models send an opaque reasoning item first; callers must cope.
        items.append({"type": "reasoning", "id": f"rs_fake_{n}", "summary": []})
    if a.text:
        part = {"type": "output_text", "text": a.text, "annotations": [], "logprobs": []}
        items.append(
            {
                "type": "message",
                "id": f"msg_fake_{n}",
                "role": "assistant",
                "status": "completed",
                "content": [part],
            }
        )
    if a.tool and a.tool.input is not None:
        items.append(
            {
                "type": "custom_tool_call",
                "id": f"ctc_fake_{n}",
                "call_id": a.tool.id,
                "name": a.tool.name,
                "input": a.tool.input,
                "status": "completed",
            }
        )
    elif a.tool:
        items.append(
            {
                "type": "function_call",
                "id": f"fc_fake_{n}",
                "call_id": a.tool.id,
                "name": a.tool.name,
                "arguments": compact(a.tool.arguments).decode(),
                "status": "completed",
            }
        )
    return items


def _response(model: str, a: Answer, n: int, *, done: bool) -> JSON:
    cut = a.finish == "length"
    status = ("incomplete" if cut else "completed") if done else "in_progress"
    return {
        "id": f"resp_fake_{n}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if done and cut else None,
        "model": model,
        "output": _items(a, n) if done else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _usage(a) if done else None,
    }


def render_responses_body(model: str, a: Answer) -> JSON:
    """A whole non-streaming ``response`` object."""
    return _response(model, a, next(_ids), done=True)


def render_responses_stream(model: str, a: Answer) -> list[bytes]:
    """Every event of a streamed answer, numbered in order."""
    n = next(_ids)
    out: list[bytes] = []

    def event(name: str, **fields: Any) -> None:
        out.append(encode_event(name, {"type": name, "sequence_number": len(out), **fields}))

    event("response.created", response=_response(model, a, n, done=False))
    event("response.in_progress", response=_response(model, a, n, done=False))
    for index, item in enumerate(_items(a, n)):
        if item["type"] == "message":
            event("response.output_item.added", output_index=index, item={**item, "content": []})
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            empty = {**item["content"][0], "text": ""}
            event("response.content_part.added", **where, part=empty)
            for piece in _pieces(a.text):
                event("response.output_text.delta", **where, delta=piece, logprobs=[])
            event("response.output_text.done", **where, text=a.text, logprobs=[])
            event("response.content_part.done", **where, part=item["content"][0])
        elif item["type"] == "function_call":
            event("response.output_item.added", output_index=index, item={**item, "arguments": ""})
            where = {"item_id": item["id"], "output_index": index}
            args = item["arguments"]
            for half in (args[: len(args) // 2], args[len(args) // 2 :]):
                if half:
                    event("response.function_call_arguments.delta", **where, delta=half)
            event("response.function_call_arguments.done", **where, arguments=args)
        else:
            event("response.output_item.added", output_index=index, item=item)
        event("response.output_item.done", output_index=index, item=item)
    final = _response(model, a, n, done=True)
    event(
        "response.incomplete" if final["status"] == "incomplete" else "response.completed",
        response=final,
    )
    return out


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]] if text else []
