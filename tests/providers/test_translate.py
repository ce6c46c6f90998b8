"""Request, answer and usage translation between chat completions, Anthropic and Responses."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from providers.formats import chat, messages, responses
from providers.formats.hub import (
    Image,
    Meter,
    Reply,
    StopReason,
    Text,
    ToolCall,
    ToolResult,
    Untranslatable,
)
from providers.translate import (
    FORMATS,
    strip_runcap_metadata,
    translate_reply,
    translate_request,
    usage_of,
)
from workflows.contracts import Usage, WireFormat

APIS: list[WireFormat] = ["openai", "anthropic", "responses"]
PAIRS = [(a, b) for a, b in itertools.permutations(APIS, 2)]
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
PNG = "data:image/png;base64,AAAA"

OPENAI_CHAT: dict[str, Any] = {
    "model": "gpt-4.1",
    "max_tokens": 100,
    "temperature": 1.5,
    "top_p": 0.9,
    "stop": "END",
    "user": "u-1",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": PNG}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
        {"role": "user", "content": "Thanks"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {"name": "weather", "description": "Look up", "parameters": WEATHER},
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "weather"}},
    "parallel_tool_calls": False,
    "response_format": {"type": "text"},
}

CONVERSATION: dict[WireFormat, dict[str, Any]] = {
    "openai": {
        "model": "m",
        "max_tokens": 80,
        "messages": [
            {"role": "system", "content": "Be brief."},
            OPENAI_CHAT["messages"][2],
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": OPENAI_CHAT["messages"][3]["tool_calls"],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
        ],
        "tools": OPENAI_CHAT["tools"],
        "tool_choice": "required",
    },
    "anthropic": {
        "model": "m",
        "max_tokens": 80,
        "system": "Be brief.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "call_1",
                        "name": "weather",
                        "input": {"city": "Oslo"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "rain"}],
            },
        ],
        "tools": [{"name": "weather", "description": "Look up", "input_schema": WEATHER}],
        "tool_choice": {"type": "any"},
    },
    "responses": {
        "model": "m",
        "max_output_tokens": 80,
        "instructions": "Be brief.",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather?"},
                    {"type": "input_image", "image_url": PNG},
                ],
            },
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Checking."}],
            },
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "weather",
                "arguments": '{"city": "Oslo"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
        ],
        "tools": [
            {"type": "function", "name": "weather", "description": "Look up", "parameters": WEATHER}
        ],
        "tool_choice": "required",
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k",
    },
}


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


USAGE = Usage(input_tokens=40, output_tokens=7, cached_input_tokens=60, cache_write_tokens=5)


def test_usage_normalisation() -> None:
    """Cached and cache-written tokens leave input_tokens; each format's report reads the same."""
    assert chat.read_usage(
        {
            "prompt_tokens": 105,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 5},
            "completion_tokens_details": {"reasoning_tokens": 3},
        }
    ) == Meter(USAGE, 3)
    assert messages.read_usage(
        {
            "input_tokens": 40,
            "output_tokens": 7,
            "cache_read_input_tokens": 60,
            "cache_creation_input_tokens": 5,
        }
    ) == Meter(USAGE)
    assert messages.read_usage({"output_tokens": 9}, USAGE).usage.output_tokens == 9
    assert responses.read_usage(
        {
            "input_tokens": 105,
            "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 5},
            "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 3},
        }
    ) == Meter(USAGE, 3)


@pytest.mark.parametrize("fmt", APIS)
def test_usage_round_trips(fmt: WireFormat) -> None:
    """Writing usage in a format and reading it back is exact, cache reads and writes included."""
    meter = Meter(USAGE, 3 if fmt != "anthropic" else 0)
    write = {"openai": chat.write_usage, "anthropic": messages.write_usage}.get(
        fmt, responses.write_usage
    )
    assert FORMATS[fmt].read_usage(write(meter)) == meter


REPLY = Reply(
    "r1",
    "m",
    [Text("Checking."), ToolCall("call_1", "weather", '{"city":"Oslo"}')],
    "tool_use",
    Meter(USAGE, 2),
)


def _answer(reply: Reply) -> list[Any]:
    return [
        (p.id, p.name, json.loads(p.arguments)) if isinstance(p, ToolCall) else p
        for p in reply.parts
    ]


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_answer_round_trips(source: WireFormat, target: WireFormat) -> None:
    """An answer with text, a tool call and cache usage survives source -> target -> source."""
    body = FORMATS[source].write_reply(REPLY)
    there = translate_reply(body, source, target)
    back = FORMATS[source].read_reply(translate_reply(there, target, source))
    for reply in (FORMATS[target].read_reply(there), back):
        assert _answer(reply) == _answer(REPLY)
        assert reply.stop == "tool_use"
        assert reply.meter.usage == USAGE
    assert usage_of(there, target) == USAGE


def test_length_and_refusal_answers() -> None:
    """A cut answer and a refusal keep their meaning in every format."""
    stops: list[StopReason] = ["length", "refusal"]
    for stop in stops:
        reply = Reply("r", "m", [Text("partial")], stop, Meter())
        for source, target in PAIRS:
            out = translate_reply(FORMATS[source].write_reply(reply), source, target)
            assert FORMATS[target].read_reply(out).stop == stop, (source, target, stop)
    cut = responses.write_reply(Reply("r", "m", [Text("x")], "length", Meter()))
    assert cut["status"] == "incomplete"
    assert cut["incomplete_details"] == {"reason": "max_output_tokens"}


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
