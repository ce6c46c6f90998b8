"""The one internal form that every wire format is read into and written from.

Three formats translated pairwise would need six translators for each of requests, answers and
streams; through one form each format needs only a reader and a writer, and any caller format
can be served by any target format. The form holds what all three can say: system text, user
and assistant turns of text, images, tool calls and tool results, function tools, the usual
sampling fields, and usage. What only one format has (reasoning items, built-in tools, stored
items) is never translated: same-format bodies pass through untouched, and a cross-format body
that needs it is refused with ``Untranslatable``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from workflows.contracts import Usage

JSON = dict[str, Any]
Role = Literal["system", "user", "assistant"]
StopReason = Literal["end", "length", "tool_use", "refusal"]


class Untranslatable(ValueError):
    """The body needs something the target's format cannot express."""


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Image:
    url: str
    """An ``https:`` URL or a ``data:`` URL."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """JSON text as the model wrote it; it may be broken, and is kept as it is."""


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    text: str
    is_error: bool = False


Part = Text | Image | ToolCall | ToolResult


@dataclass
class Turn:
    role: Role
    parts: list[Part] = field(default_factory=list)

    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: JSON


@dataclass
class Request:
    """A model request. ``tool_choice`` is ``auto``, ``required``, ``none`` or a tool's name."""

    turns: list[Turn] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    user: str = ""
    reasoning_effort: str | None = None
    prompt_cache_key: str | None = None
    compaction: bool = False
    """The caller asked for a compaction summary (``providers.formats.compaction``)."""

    def add(self, role: Role, parts: list[Part]) -> None:
        """Append ``parts``, joining the previous turn when it has the same role."""
        if not parts:
            return
        if self.turns and self.turns[-1].role == role and role != "system":
            self.turns[-1].parts.extend(parts)
        else:
            self.turns.append(Turn(role, list(parts)))


FORCED = ("auto", "required", "none")
"""The tool choices that are not a tool's name."""


@dataclass(frozen=True)
class Meter:
    """Usage as runcap bills it, plus the reasoning tokens (already inside ``output_tokens``)."""

    usage: Usage = field(default_factory=Usage)
    reasoning_tokens: int = 0


@dataclass
class Reply:
    """A finished answer from the model."""

    id: str
    model: str
    parts: list[Text | ToolCall]
    stop: StopReason
    meter: Meter

    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))

    def tool_calls(self) -> list[ToolCall]:
        return [p for p in self.parts if isinstance(p, ToolCall)]


# ---- stream events: what every upstream stream is read into ------------------------------------


@dataclass(frozen=True)
class Started:
    id: str
    model: str


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolStarted:
    slot: int
    """The upstream's own index of this call; deltas name the same slot."""
    id: str
    name: str


@dataclass(frozen=True)
class ToolDelta:
    slot: int
    arguments: str


@dataclass(frozen=True)
class Finished:
    stop: StopReason


@dataclass(frozen=True)
class Ended:
    """The upstream reached its proper end; ``meter`` is its final usage."""

    meter: Meter


Event = Started | TextDelta | ToolStarted | ToolDelta | Finished | Ended


# ---- small helpers the readers share ----------------------------------------------------------


def as_dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def arguments_json(value: Any) -> str:
    """Tool arguments as JSON text, whether given as text or as an object."""
    if isinstance(value, str):
        return value
    return json.dumps(value if value is not None else {})


def arguments_object(raw: str) -> Any:
    """Tool arguments as an object; broken JSON stays visible rather than failing the call."""
    try:
        return json.loads(raw or "{}")
    except ValueError:
        return {"_raw_arguments": raw}


def stop_of(parts: list[Text | ToolCall], stop: StopReason) -> StopReason:
    """A finished answer that calls a tool stops for the tool, whatever the upstream said."""
    if stop == "end" and any(isinstance(p, ToolCall) for p in parts):
        return "tool_use"
    return stop
