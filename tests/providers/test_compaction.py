"""Codex's remote compaction across formats: the trigger, the item runcap writes, and its return."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers.formats import compaction
from providers.formats.hub import (
    Ended,
    Event,
    Finished,
    Meter,
    Started,
    TextDelta,
    ToolDelta,
    ToolStarted,
)
from providers.formats.writers import ResponsesWriter
from providers.translate import (
    Untranslatable,
    compacting,
    pass_through,
    translate_reply,
    translate_request,
)
from tests.providers.test_streams import parse
from workflows.contracts import Usage, WireFormat

SECRET = "the password is swordfish"
TOOL = {"type": "function", "name": "read", "parameters": {"type": "object", "properties": {}}}
HISTORY: list[dict[str, Any]] = [
    {"type": "message", "role": "user", "content": "read notes.txt"},
    {"type": "function_call", "call_id": "c1", "name": "read", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c1", "output": SECRET},
]
TRIGGER = {"type": "compaction_trigger"}


def asked(*items: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "input": [*HISTORY, *items], "tools": [TOOL]}


def text_of(body: dict[str, Any], fmt: WireFormat) -> str:
    return json.dumps(body["messages"] if fmt != "responses" else body["input"])


@pytest.mark.parametrize("target", ["openai", "anthropic"])
def test_trigger_becomes_a_summary_request(target: WireFormat) -> None:
    """For a target that cannot compact, the trigger becomes the summary prompt as the last user
    turn, after the whole history, and the model is told not to call tools."""
    body = asked(TRIGGER)
    assert compaction.requested(body) and compacting(body, "responses", target)
    out = translate_request(body, "responses", target)
    assert SECRET in text_of(out, target)
    assert "compaction_trigger" not in json.dumps(out)
    last = out["messages"][-1]
    assert last["role"] == "user" and compaction.PROMPT in json.dumps(last)
    choice = out.get("tool_choice")
    assert choice in ("none", {"type": "none"})


def test_a_responses_target_compacts_itself() -> None:
    """A Responses target is not asked for a summary: the request passes as it is."""
    body = asked(TRIGGER)
    assert not compacting(body, "responses", "responses")
    assert pass_through(body, "responses") == body


@pytest.mark.parametrize("source", ["openai", "anthropic"])
def test_reply_becomes_exactly_one_compaction_item(source: WireFormat) -> None:
    """The model's summary comes back to a Responses caller as exactly one compaction item
    whose content runcap can read back; usage is kept for billing."""
    reply = {
        "openai": {
            "id": "c",
            "model": "m",
            "choices": [{"message": {"role": "assistant", "content": SECRET}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 6},
        },
        "anthropic": {
            "id": "c",
            "model": "m",
            "content": [{"type": "text", "text": SECRET}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 50, "output_tokens": 6},
        },
    }[source]
    out = translate_reply(reply, source, "responses", compaction=True)
    [item] = out["output"]
    assert item["type"] == "compaction" and item["id"].startswith("cmp_")
    assert compaction.summary_of(item) == SECRET
    assert out["status"] == "completed" and out["usage"]["output_tokens"] == 6


@pytest.mark.parametrize("target", ["openai", "anthropic", "responses"])
def test_runcap_item_returns_as_a_user_turn_for_any_target(target: WireFormat) -> None:
    """The next request carries the item runcap wrote; each target, Responses included, gets
    the summary as a plain user turn, never runcap's packing."""
    body = {
        "model": "m",
        "input": [
            {"type": "message", "role": "user", "content": "read notes.txt"},
            compaction.item(SECRET, "cmp_1"),
            {"type": "message", "role": "user", "content": "go on"},
        ],
    }
    if target == "responses":
        out = pass_through(body, "responses")
        assert out["input"][1] == compaction.handoff_message(SECRET)
    else:
        out = translate_request(body, "responses", target)
    text = text_of(out, target)
    assert SECRET in text and compaction.MARK not in text


def test_providers_own_item_goes_only_to_a_responses_target() -> None:
    """An item the provider encrypted passes untouched to a Responses target and is refused,
    with the reason, by any other."""
    body = {"model": "m", "input": [{"type": "compaction", "encrypted_content": "gAAAA-opaque"}]}
    assert pass_through(body, "responses") == body
    with pytest.raises(Untranslatable, match="encrypted for it"):
        translate_request(body, "responses", "openai")


def test_trigger_must_come_last() -> None:
    """A trigger followed by more input is refused rather than silently reordered."""
    body = {"model": "m", "input": [TRIGGER, {"type": "message", "role": "user", "content": "x"}]}
    with pytest.raises(Untranslatable, match="last input item"):
        translate_request(body, "responses", "anthropic")


async def test_stream_writes_one_item_and_completes() -> None:
    """Streamed, the summary is not sent as text: one compaction item, then
    response.completed (even when the upstream stopped at its length cap)."""
    writer = ResponsesWriter(compaction=True)
    meter = Meter(Usage(input_tokens=30, output_tokens=4))
    events: list[Event] = [
        Started("u", "m"),
        TextDelta("the pass"),
        TextDelta("word"),
        ToolStarted(0, "c", "x"),
        ToolDelta(0, "{}"),
        Finished("length"),
        Ended(meter),
    ]
    raw = b"".join(chunk for e in events for chunk in writer.write(e))
    sse = [e.json() for e in await parse(raw)]
    kinds = [e["type"] for e in sse]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    done = sse[3]["item"]
    assert compaction.summary_of(done) == "the password"
    assert sse[-1]["response"]["output"] == [done]
    assert sse[-1]["response"]["usage"]["output_tokens"] == 4
