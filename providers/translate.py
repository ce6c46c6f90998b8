"""Request mapping between OpenAI chat completions and Anthropic messages.

A fallback chain may cross providers, so a call written for one format must be answerable by the
other. Cross-format bodies carry only fields the target format knows (Anthropic rejects unknown
fields); same-format bodies are left to the adapters, which forward them nearly untouched.
Answers, usage and streams map in ``replies`` and ``streams``.
"""

from __future__ import annotations

import json
from typing import Any

JSON = dict[str, Any]


def strip_runcap_metadata(body: JSON) -> None:
    """runcap's own ``metadata.tags`` are for attribution, never for the provider."""
    meta = body.get("metadata")
    if isinstance(meta, dict) and "tags" in meta:
        rest = {k: v for k, v in meta.items() if k != "tags"}
        if rest:
            body["metadata"] = rest
        else:
            del body["metadata"]


# ---- OpenAI request -> Anthropic request ------------------------------------------------------


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return "".join(parts)


def _image_to_anthropic(part: JSON) -> JSON:
    url = str((part.get("image_url") or {}).get("url", ""))
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[JSON] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_to_anthropic(part))
    return blocks


def _arguments(raw: Any) -> Any:
    # Models sometimes emit broken JSON; keep it visible rather than fail the whole call.
    if not isinstance(raw, str):
        return raw or {}
    try:
        return json.loads(raw or "{}")
    except ValueError:
        return {"_raw_arguments": raw}


def assistant_blocks(msg: JSON) -> list[JSON]:
    text = _text_of(msg.get("content"))
    blocks: list[JSON] = [{"type": "text", "text": text}] if text else []
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": fn.get("name", ""),
                "input": _arguments(fn.get("arguments")),
            }
        )
    return blocks


def _tool_choice_to_anthropic(choice: Any, parallel: Any) -> JSON | None:
    if choice is None and parallel is not False:
        return None
    if isinstance(choice, dict):
        out: JSON = {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    else:
        out = {"type": {"required": "any", "none": "none"}.get(str(choice), "auto")}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def openai_to_anthropic_request(body: JSON) -> JSON:
    """An OpenAI chat request as an Anthropic messages request (known fields only)."""
    system: list[str] = []
    messages: list[JSON] = []

    def add(role: str, blocks: list[JSON]) -> None:
        # Anthropic wants alternating roles, so consecutive turns of one role merge.
        if not blocks:
            return
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for msg in body.get("messages") or []:
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(msg.get("content")))
        elif role == "assistant":
            add("assistant", assistant_blocks(msg))
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": msg.get("tool_call_id", ""),
                "content": _text_of(msg.get("content")),
            }
            add("user", [result])
        else:
            add("user", _user_blocks(msg.get("content")))
    out: JSON = {"model": body.get("model", ""), "messages": messages}
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    cap = body.get("max_completion_tokens", body.get("max_tokens"))
    if cap is not None:
        out["max_tokens"] = cap
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if body.get("stream"):
        out["stream"] = True
    tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    if tools:
        out["tools"] = [
            {
                "name": fn.get("name", ""),
                **({"description": fn["description"]} if fn.get("description") else {}),
                "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
            }
            for fn in tools
        ]
        choice = _tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    return out


# ---- Anthropic request -> OpenAI request ------------------------------------------------------


def _image_to_openai(block: JSON) -> JSON:
    src = block.get("source") or {}
    if src.get("type") == "base64":
        url = f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}"
    else:
        url = str(src.get("url", ""))
    return {"type": "image_url", "image_url": {"url": url}}


def _result_text(content: Any) -> str:
    return content if isinstance(content, str) else _text_of(content)


def _anthropic_message_to_openai(msg: JSON) -> list[JSON]:
    role = msg.get("role", "user")
    content = msg.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    blocks: list[JSON] = list(content or [])
    if role == "assistant":
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        calls = [
            {
                "id": b.get("id", ""),
                "type": "function",
                "function": {"name": b.get("name", ""), "arguments": json.dumps(b.get("input"))},
            }
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        out: JSON = {"role": "assistant", "content": text or None}
        if calls:
            out["tool_calls"] = calls
        return [out]
    # Tool results become ``role: tool`` messages, which OpenAI wants right after the call.
    results = [
        {
            "role": "tool",
            "tool_call_id": b.get("tool_use_id", ""),
            "content": _result_text(b.get("content")),
        }
        for b in blocks
        if b.get("type") == "tool_result"
    ]
    parts: list[JSON] = []
    for b in blocks:
        if b.get("type") == "text":
            parts.append({"type": "text", "text": b.get("text", "")})
        elif b.get("type") == "image":
            parts.append(_image_to_openai(b))
    if parts:
        results.append({"role": "user", "content": parts})
    return results


def _tool_choice_to_openai(choice: JSON) -> Any:
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return {"any": "required", "none": "none"}.get(str(kind), "auto")


def anthropic_to_openai_request(body: JSON) -> JSON:
    """An Anthropic messages request as an OpenAI chat request (known fields only)."""
    messages: list[JSON] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _result_text(system)})
    for msg in body.get("messages") or []:
        messages.extend(_anthropic_message_to_openai(msg))
    out: JSON = {"model": body.get("model", ""), "messages": messages}
    if body.get("max_tokens") is not None:
        out["max_tokens"] = body["max_tokens"]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stream"):
        out["stream"] = True
    tools = [t for t in body.get("tools") or [] if "input_schema" in t]
    if tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name", ""),
                    **({"description": t["description"]} if t.get("description") else {}),
                    "parameters": t["input_schema"],
                },
            }
            for t in tools
        ]
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            out["tool_choice"] = _tool_choice_to_openai(choice)
            if choice.get("disable_parallel_tool_use"):
                out["parallel_tool_calls"] = False
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = str(user)
    return out
