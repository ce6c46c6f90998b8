"""Request, answer and usage mapping between the OpenAI and Anthropic formats."""

from __future__ import annotations

import json
from typing import Any

from providers.replies import (
    anthropic_to_openai_response,
    openai_to_anthropic_response,
    usage_from_anthropic,
    usage_from_openai,
    usage_to_anthropic,
    usage_to_openai,
)
from providers.translate import (
    anthropic_to_openai_request,
    openai_to_anthropic_request,
    strip_runcap_metadata,
)
from workflows.contracts import Usage

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}

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
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
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


def test_openai_request_to_anthropic() -> None:
    """System, images, tool calls, tool results, tools and sampling map to Anthropic fields."""
    out = openai_to_anthropic_request(OPENAI_CHAT)
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
    """Anthropic system, tool_use and tool_result blocks become OpenAI messages and tools."""
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_k": 5,
        "tools": [{"name": "weather", "input_schema": WEATHER}, {"type": "web_search_20250305"}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "tu_1",
                        "name": "weather",
                        "input": {"city": "Oslo"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "tu_1",
                        "content": [{"type": "text", "text": "rain"}],
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x/img.png"}},
                ],
            },
        ],
    }
    out = anthropic_to_openai_request(body)
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    assert out["messages"][2]["tool_calls"][0]["function"] == {
        "name": "weather",
        "arguments": json.dumps({"city": "Oslo"}),
    }
    assert out["messages"][2]["content"] == "Checking."
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "tu_1", "content": "rain"}
    assert out["messages"][4]["content"] == [
        {"type": "image_url", "image_url": {"url": "https://x/img.png"}}
    ]
    assert out["tools"] == [
        {"type": "function", "function": {"name": "weather", "parameters": WEATHER}}
    ]
    assert out["tool_choice"] == "required"
    assert out["parallel_tool_calls"] is False
    assert out["stop"] == ["END"]
    assert "top_k" not in out


def test_request_round_trip_keeps_the_conversation() -> None:
    """OpenAI -> Anthropic -> OpenAI keeps roles, texts and tool calls."""
    back = anthropic_to_openai_request(openai_to_anthropic_request(OPENAI_CHAT))
    roles = [m["role"] for m in back["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert back["messages"][2]["tool_calls"][0]["id"] == "call_1"


def test_tool_choice_strings_map_both_ways() -> None:
    """auto/required/none map to auto/any/none and back."""
    tools = OPENAI_CHAT["tools"]
    for openai, anthropic in (("auto", "auto"), ("required", "any"), ("none", "none")):
        out = openai_to_anthropic_request({"messages": [], "tools": tools, "tool_choice": openai})
        assert out["tool_choice"] == {"type": anthropic}
        body = {"messages": [], "tools": out["tools"], "tool_choice": {"type": anthropic}}
        assert anthropic_to_openai_request(body)["tool_choice"] == openai


def test_strip_runcap_metadata() -> None:
    """runcap's tags leave the body; other metadata stays."""
    body: dict[str, Any] = {"metadata": {"tags": ["step:edit"], "user_id": "u"}}
    strip_runcap_metadata(body)
    assert body == {"metadata": {"user_id": "u"}}
    only_tags: dict[str, Any] = {"metadata": {"tags": ["a"]}}
    strip_runcap_metadata(only_tags)
    assert only_tags == {}


def test_usage_normalisation() -> None:
    """Cached tokens leave input_tokens; cache writes are kept apart."""
    openai = {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 60},
    }
    assert usage_from_openai(openai) == Usage(40, 7, 60, 0)
    anthropic = {
        "input_tokens": 40,
        "output_tokens": 7,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 5,
    }
    assert usage_from_anthropic(anthropic) == Usage(40, 7, 60, 5)
    assert usage_from_anthropic({"output_tokens": 9}, Usage(40, 1, 60, 5)) == Usage(40, 9, 60, 5)
    assert usage_from_openai(usage_to_openai(Usage(40, 7, 60, 0))) == Usage(40, 7, 60, 0)
    assert usage_from_anthropic(usage_to_anthropic(Usage(1, 2, 3, 4))) == Usage(1, 2, 3, 4)


def test_anthropic_answer_to_openai() -> None:
    """An Anthropic tool_use answer becomes an OpenAI tool call with finish_reason tool_calls."""
    message = {
        "id": "msg_1",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2},
    }
    out = anthropic_to_openai_response(message)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Oslo"
    }
    assert out["usage"]["prompt_tokens"] == 12
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 2}


def test_openai_answer_to_anthropic() -> None:
    """An OpenAI answer becomes an Anthropic message; length maps to max_tokens."""
    completion = {
        "id": "chatcmpl-1",
        "model": "gpt-4.1",
        "choices": [{"message": {"role": "assistant", "content": "Hi"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3},
    }
    out = openai_to_anthropic_response(completion)
    assert out["content"] == [{"type": "text", "text": "Hi"}]
    assert out["stop_reason"] == "max_tokens"
    assert out["usage"]["input_tokens"] == 9
    assert out["usage"]["output_tokens"] == 3


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
    block = openai_to_anthropic_request(body)["messages"][0]["content"][0]
    assert block["input"] == {"_raw_arguments": "{oops"}
