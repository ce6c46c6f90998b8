"""One conversation spelt in each wire format, for the translation tests: system text, a user
turn with an image, an assistant turn with text and a tool call, the tool's result, a tool."""

from __future__ import annotations

from typing import Any

from workflows.contracts import WireFormat

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
