"""Request translation between chat completions, Anthropic messages and Responses."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from providers.formats.hub import (
    Image,
    Text,
    ToolCall,
    ToolResult,
    Untranslatable,
)
from providers.translate import (
    FORMATS,
    strip_runcap_metadata,
    translate_request,
)
from tests.providers.conversations import CONVERSATION, OPENAI_CHAT, PNG, WEATHER
from workflows.contracts import WireFormat

APIS: list[WireFormat] = ["openai", "anthropic", "responses"]
PAIRS = [(a, b) for a, b in itertools.permutations(APIS, 2)]


def _conversation(body: dict[str, Any], fmt: WireFormat) -> Any:
    """What must survive any translation: turns (arguments as objects), tools, choice, cap."""
    req = FORMATS[fmt].read_request(body)
    turns = [
        (
            t.role,
            [
                (p.id, p.name, json.loads(p.arguments)) if isinstance(p, ToolCall) else p
                for p in t.parts
            ],
        )
        for t in req.turns
    ]
    return turns, req.tools, req.tool_choice, req.max_tokens


@pytest.mark.parametrize("fmt", APIS)
def test_every_format_reads_the_same_conversation(fmt: WireFormat) -> None:
    """The three spellings of one conversation read into one internal form."""
    turns, tools, choice, cap = _conversation(CONVERSATION[fmt], fmt)
    assert turns == [
        ("system", [Text("Be brief.")]),
        ("user", [Text("Weather?"), Image(PNG)]),
        ("assistant", [Text("Checking."), ("call_1", "weather", {"city": "Oslo"})]),
        ("user", [ToolResult("call_1", "rain")]),
    ]
    assert [(t.name, t.description, t.parameters) for t in tools] == [
        ("weather", "Look up", WEATHER)
    ]
    assert (choice, cap) == ("required", 80)


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_request_round_trips_keep_the_conversation(source: WireFormat, target: WireFormat) -> None:
    """source -> target -> source keeps turns, images, tool calls and results, tools, choice."""
    body = CONVERSATION[source]
    there = translate_request(body, source, target)
    back = translate_request(there, target, source)
    assert _conversation(there, target) == _conversation(body, source)
    assert _conversation(back, source) == _conversation(body, source)


def test_openai_request_to_anthropic() -> None:
    """System, images, tool calls, tool results, tools and sampling map to Anthropic fields."""
    out = translate_request(OPENAI_CHAT, "openai", "anthropic")
    assert out["system"] == "Be brief.\n\nUse tools."
    assert out["max_tokens"] == 100
    assert out["temperature"] == 1.0
    assert out["top_p"] == 0.9
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "u-1"}
    assert out["tools"] == [{"name": "weather", "description": "Look up", "input_schema": WEATHER}]
    assert out["tool_choice"] == {
        "type": "tool",
        "name": "weather",
        "disable_parallel_tool_use": True,
    }
    assert "response_format" not in out
    user, assistant, results = out["messages"]
    assert user["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}
        ],
    }
    # The tool result and the next user text merge: Anthropic wants alternating roles.
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "rain"},
        {"type": "text", "text": "Thanks"},
    ]


def test_anthropic_request_to_openai() -> None:
    """Anthropic system, thinking, tool_use and tool_result blocks become OpenAI messages."""
    body = json.loads(json.dumps(CONVERSATION["anthropic"]))
    body["system"] = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    body["messages"][1]["content"].insert(
        0, {"type": "thinking", "thinking": "hmm", "signature": "s"}
    )
    body["messages"][2]["content"][0]["content"] = [{"type": "text", "text": "rain"}]
    body.update(stop_sequences=["END"], temperature=0.2, top_k=5)
    body["tool_choice"] = {"type": "any", "disable_parallel_tool_use": True}
    out = translate_request(body, "anthropic", "openai")
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    assert out["messages"][2]["content"] == "Checking."
    assert out["messages"][2]["tool_calls"][0]["function"] == {
        "name": "weather",
        "arguments": json.dumps({"city": "Oslo"}),
    }
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": "rain"}
    assert out["tool_choice"] == "required"
    assert out["parallel_tool_calls"] is False
    assert out["stop"] == ["END"]
    assert "top_k" not in out


def test_responses_request_to_chat_and_anthropic() -> None:
    """instructions, function calls and outputs map; reasoning items and store stay behind."""
    body = CONVERSATION["responses"]
    out = translate_request(body, "responses", "openai")
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    assert out["messages"][2]["tool_calls"][0]["id"] == "call_1"
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": "rain"}
    assert out["prompt_cache_key"] == "k"
    assert out["max_tokens"] == 80
    assert "store" not in out and "include" not in out
    anthropic = translate_request(body, "responses", "anthropic")
    assert anthropic["messages"][1]["content"][1]["input"] == {"city": "Oslo"}
    assert "opaque" not in json.dumps(anthropic)


def test_chat_request_to_responses() -> None:
    """Chat becomes Responses items; tools are not strict, since chat schemas need not be."""
    out = translate_request(CONVERSATION["openai"], "openai", "responses")
    assert out["input"][0] == {"type": "message", "role": "system", "content": "Be brief."}
    assert out["input"][1]["content"][1] == {
        "type": "input_image",
        "image_url": PNG,
        "detail": "auto",
    }
    assert [i["type"] for i in out["input"][2:]] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    assert out["tools"][0]["strict"] is False
    assert out["max_output_tokens"] == 80
    assert out["store"] is False


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        ("responses", {"input": "hi", "tools": [{"type": "web_search"}]}),
        ("responses", {"input": [{"type": "item_reference", "id": "msg_1"}]}),
        ("responses", {"input": [{"type": "additional_tools", "tools": []}]}),
        ("anthropic", {"messages": [], "tools": [{"type": "web_search_20250305", "name": "w"}]}),
        ("openai", {"messages": [], "tools": [{"type": "custom", "custom": {"name": "x"}}]}),
    ],
)
def test_what_only_one_format_has_is_refused_elsewhere(fmt: WireFormat, body: Any) -> None:
    """Built-in tools and stored items cannot be translated: a clear refusal, not a silent drop."""
    target: WireFormat = "openai" if fmt != "openai" else "anthropic"
    with pytest.raises(Untranslatable, match="type"):
        translate_request(body, fmt, target)


def test_tool_choice_strings_map_everywhere() -> None:
    """auto/required/none and a named tool survive every pair of formats."""
    for choice in ("auto", "required", "none", "weather"):
        for source, target in PAIRS:
            body = json.loads(json.dumps(CONVERSATION[source]))
            req = FORMATS[source].read_request(body)
            req.tool_choice = choice
            out = FORMATS[target].write_request(req)
            assert FORMATS[target].read_request(out).tool_choice == choice, (source, target)


def test_strip_runcap_metadata() -> None:
    """runcap's tags leave the body, as a list or a string; other metadata stays."""
    body: dict[str, Any] = {"metadata": {"tags": ["step:edit"], "user_id": "u"}}
    strip_runcap_metadata(body)
    assert body == {"metadata": {"user_id": "u"}}
    only_tags: dict[str, Any] = {"metadata": {"tags": "a,b"}}
    strip_runcap_metadata(only_tags)
    assert only_tags == {}


def test_broken_tool_arguments_are_kept_not_fatal() -> None:
    """A tool call with invalid JSON arguments still translates, keeping the raw text."""
    body = {
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}],
            }
        ]
    }
    block = translate_request(body, "openai", "anthropic")["messages"][0]["content"][0]
    assert block["input"] == {"_raw_arguments": "{oops"}
    assert translate_request(body, "openai", "responses")["input"][0]["arguments"] == "{oops"
