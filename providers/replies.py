"""Usage and answer mapping between OpenAI chat completions and Anthropic messages.

Usage is normalised to runcap's ``Usage`` (input excludes cache reads and writes) whichever
format reported it, and rendered back in the caller's format.
"""

from __future__ import annotations

import json
import time
from typing import Any

from providers.translate import assistant_blocks
from workflows.contracts import Usage

JSON = dict[str, Any]

FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


# ---- usage ------------------------------------------------------------------------------------


def usage_from_openai(raw: JSON | None) -> Usage:
    """OpenAI's ``prompt_tokens`` include cached ones; runcap's ``input_tokens`` do not."""
    raw = raw or {}
    details = raw.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    prompt = int(raw.get("prompt_tokens") or 0)
    return Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_input_tokens=cached,
    )


def usage_from_anthropic(raw: JSON | None, base: Usage | None = None) -> Usage:
    """Anthropic reports cache reads and writes apart; absent fields keep ``base``'s values."""
    raw = raw or {}
    base = base or Usage()

    def pick(name: str, old: int) -> int:
        value = raw.get(name)
        return old if value is None else int(value)

    return Usage(
        input_tokens=pick("input_tokens", base.input_tokens),
        output_tokens=pick("output_tokens", base.output_tokens),
        cached_input_tokens=pick("cache_read_input_tokens", base.cached_input_tokens),
        cache_write_tokens=pick("cache_creation_input_tokens", base.cache_write_tokens),
    )


def usage_to_openai(usage: Usage) -> JSON:
    prompt = usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def usage_to_anthropic(usage: Usage) -> JSON:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


# ---- responses --------------------------------------------------------------------------------


def anthropic_to_openai_response(body: JSON) -> JSON:
    """An Anthropic message as an OpenAI chat completion."""
    blocks: list[JSON] = body.get("content") or []
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = [
        {
            "id": b.get("id", ""),
            "type": "function",
            "function": {"name": b.get("name", ""), "arguments": json.dumps(b.get("input") or {})},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    message: JSON = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    finish = STOP_TO_FINISH.get(str(body.get("stop_reason")), "stop")
    return {
        "id": body.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage_to_openai(usage_from_anthropic(body.get("usage"))),
    }


def openai_to_anthropic_response(body: JSON) -> JSON:
    """An OpenAI chat completion as an Anthropic message (first choice only)."""
    choices = body.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    blocks = assistant_blocks(message)
    finish = choice.get("finish_reason")
    return {
        "id": body.get("id", ""),
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": blocks,
        "stop_reason": FINISH_TO_STOP.get(str(finish), "end_turn"),
        "stop_sequence": None,
        "usage": usage_to_anthropic(usage_from_openai(body.get("usage"))),
    }
