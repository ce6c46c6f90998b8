"""What the fake provider is told to do, and what it has seen.

Tests script a model's behaviour (answers, usage, latency, faults) over the control API; the
server keeps per-model counters and a short log of request bodies so a test can check what really
reached the provider.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JSON = dict[str, Any]
FakeFormat = Literal["openai", "anthropic", "responses"]
DEFAULT_MAX_TOKENS = 4096
REQUEST_LOG = 200


class ToolCall(BaseModel):
    """A tool call to answer with, when the request offers tools and does not end with a
    tool's result (so a tool round trip ends with a text answer)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: JSON = Field(default_factory=dict)
    id: str = "call_fake_1"
    input: str | None = None
    """A freeform (custom) tool's input, such as Codex's ``exec``: the Responses answer is a
    ``custom_tool_call``; the other formats, which have no such tool, get ``{"input": ...}``."""
    times: int | None = None
    """How many answers call the tool; ``null`` is every answer that may. An agent that rebuilds
    its history (a compaction) may offer tools again with no tool result at the end."""

    def arguments_json(self) -> JSON:
        return {"input": self.input} if self.input is not None else self.arguments


class Fault(BaseModel):
    """One injected failure: a status, a hang or a dropped stream; ``times: null`` is forever."""

    model_config = ConfigDict(extra="forbid")
    status: int | None = None
    message: str | None = None
    retry_after: float | None = None
    timeout: bool = False
    hang_ms: int = 600_000
    drop_stream_after: int | None = None
    times: int | None = 1


class Script(BaseModel):
    """A model's behaviour. ``model: "*"`` scripts every model without its own script."""

    model_config = ConfigDict(extra="forbid")
    model: str
    faults: list[Fault] = Field(default_factory=list)
    latency_ms: int = 0
    chunk_delay_ms: int = 0
    reply: str | None = None
    completion_tokens: int | Literal["max"] | None = None
    prompt_tokens: int | None = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    """Of the completion tokens, how many the model spent reasoning (reported, not shown)."""
    web_searches: int = 0
    """Server-side web searches the answer reports (Anthropic's ``server_tool_use``, the
    Responses API's ``web_search_call`` items), as a provider bills them per use."""
    retry_after: float | None = None
    timeout: bool = False
    drop_stream_after: int | None = None
    tool_call: ToolCall | None = None


@dataclass
class Counter:
    calls: int = 0
    failures: int = 0
    cancelled: int = 0
    """Requests whose client went away before the answer ended (the caller cancelled them)."""
    running: int = 0
    """Requests being answered now (a stream until its last chunk)."""
    peak: int = 0
    """The most requests ever answered at once."""


class FakeState:
    """Scripts, counters and the request log; touched only from the server's event loop."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.counters: dict[str, Counter] = {}
        self.requests: deque[JSON] = deque(maxlen=REQUEST_LOG)

    def reset(self) -> None:
        self.scripts.clear()
        self.counters.clear()
        self.requests.clear()

    def script_for(self, model: str) -> Script:
        return self.scripts.get(model) or self.scripts.get("*") or Script(model=model)

    def counter(self, model: str) -> Counter:
        return self.counters.setdefault(model, Counter())

    def next_fault(self, script: Script) -> Fault | None:
        """The fault this call suffers: the queue's head first, then the permanent ones."""
        if script.faults:
            fault = script.faults[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    script.faults.pop(0)
            return fault
        if script.timeout:
            return Fault(timeout=True, times=None)
        if script.drop_stream_after is not None:
            return Fault(drop_stream_after=script.drop_stream_after, times=None)
        return None


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def tokens_of(size: int) -> int:
    """About four bytes a token, never zero."""
    return max(1, math.ceil(size / 4))


_PROMPT_FIELDS = ("system", "instructions", "tools")


def count_prompt(api: FakeFormat, body: JSON) -> int:
    """Deterministic prompt tokens; never above the byte length of the messages (or input)."""
    main = len(compact(body.get("input" if api == "responses" else "messages")))
    extra = sum(len(compact(body[k])) for k in _PROMPT_FIELDS if body.get(k))
    return min(tokens_of(main + extra), main)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict):
            inner = part.get("text", part.get("content", part.get("output")))
            texts.append(inner if isinstance(inner, str) else _text(inner))
    return " ".join(t for t in texts if t)


_RESUMED_FROM = ("function_call_output", "custom_tool_call_output", "compaction")
"""Responses input items after which the model answers in text: a tool's result, or the
summary a compaction left in place of the history."""
COMPACTION_TRIGGER = "compaction_trigger"
_SEALED = "fake-encrypted:"
"""Starts the fake's own compaction content, as opaque to others as OpenAI's."""


def seal(summary: str) -> str:
    return _SEALED + base64.b64encode(summary.encode()).decode()


def unseal(content: Any) -> str:
    if not isinstance(content, str) or not content.startswith(_SEALED):
        return ""
    try:
        return base64.b64decode(content[len(_SEALED) :]).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def compaction_asked(api: FakeFormat, body: JSON) -> bool:
    """A Responses request whose input ends with Codex's compaction trigger."""
    given = body.get("input") if api == "responses" else None
    last = given[-1] if isinstance(given, list) and given else None
    return isinstance(last, dict) and last.get("type") == COMPACTION_TRIGGER


def _last_turn(api: FakeFormat, body: JSON) -> JSON:
    """The last user-side message (or Responses input item) the model is answering; system
    turns after it (Claude Code sends some) do not count."""
    if api == "responses":
        given = body.get("input")
        if isinstance(given, str):
            return {"role": "user", "content": given}
        turns = [i for i in given or [] if isinstance(i, dict)]
        turns = [i for i in turns if i.get("type") in _RESUMED_FROM or _from_user(i)]
    else:
        turns = [m for m in body.get("messages") or [] if isinstance(m, dict) and _from_user(m)]
    return turns[-1] if turns else {}


def _from_user(message: JSON) -> bool:
    return message.get("type", "message") == "message" and message.get("role") in ("user", "tool")


def ends_with_tool_result(api: FakeFormat, body: JSON) -> bool:
    """Whether the model is being handed a tool's result (then it answers in text)."""
    last = _last_turn(api, body)
    if api == "openai":
        return last.get("role") == "tool"
    if api == "responses":
        return last.get("type") in _RESUMED_FROM
    content = last.get("content")
    blocks = content if isinstance(content, list) else []
    return any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks)


def last_user_text(api: FakeFormat, body: JSON) -> str:
    last = _last_turn(api, body)
    if last.get("type") == "compaction":
        return unseal(last.get("encrypted_content"))
    if last.get("type") in _RESUMED_FROM:
        return _text(last.get("output"))
    return _text(last.get("content")) or ("tool results received" if last else "")


@dataclass
class Answer:
    """What the fake model says and what it reports using."""

    text: str
    tool: ToolCall | None
    prompt_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    finish: Literal["stop", "length", "tool_calls"]
    web_searches: int = 0
    compaction: str | None = None
    """For a compaction request: the summary, sealed into one compaction item."""


def _tools_offered(api: FakeFormat, body: JSON) -> bool:
    """Tools in ``tools``, or (Codex's Responses "lite" requests) in an ``additional_tools``
    input item."""
    given = body.get("input") if api == "responses" else None
    extra = isinstance(given, list) and any(
        isinstance(i, dict) and i.get("type") == "additional_tools" for i in given
    )
    return bool(body.get("tools")) or extra


def plan_answer(api: FakeFormat, body: JSON, script: Script, max_tokens: int) -> Answer:
    """The answer: scripted or an echo, cut at ``max_tokens`` as a real model would be; a
    compaction request gets one compaction item, as OpenAI's Responses API answers it."""
    if compaction_asked(api, body):
        history = {**body, "input": body["input"][:-1]}
        summary = "summary: " + last_user_text(api, history)[:2000]
        prompt = script.prompt_tokens or count_prompt(api, body)
        done = tokens_of(len(summary.encode()))
        return Answer("", None, prompt, 0, 0, done, 0, "stop", compaction=summary)
    offered = _tools_offered(api, body) and not ends_with_tool_result(api, body)
    tool = script.tool_call if offered else None
    if tool is not None and tool.times is not None:
        left = tool.times
        tool.times = max(left - 1, 0)
        tool = tool if left > 0 else None
    if script.reply is not None:
        text = script.reply
    elif tool is not None:
        text = ""
    else:
        text = "echo: " + last_user_text(api, body)[:200]
    natural = len(text.encode()) + (len(compact(tool.arguments_json())) if tool else 0)
    finish: Literal["stop", "length", "tool_calls"] = "tool_calls" if tool else "stop"
    if script.completion_tokens == "max":
        completion, finish = max_tokens, "length"
    elif script.completion_tokens is not None:
        completion = script.completion_tokens
    elif tokens_of(natural) + script.reasoning_tokens > max_tokens:
        text = text.encode()[: max_tokens * 4].decode(errors="ignore")
        completion, finish, tool = max_tokens, "length", None
    else:
        completion = tokens_of(natural) + script.reasoning_tokens
    prompt = script.prompt_tokens if script.prompt_tokens is not None else count_prompt(api, body)
    cached = min(script.cached_tokens, prompt)
    written = min(script.cache_write_tokens, prompt - cached)
    reasoning = min(script.reasoning_tokens, completion)
    return Answer(
        text, tool, prompt, cached, written, completion, reasoning, finish, script.web_searches
    )
