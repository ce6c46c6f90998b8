"""What providers report of one-hour cache writes and server-tool uses is read for billing,
from whole answers and from streams."""

from __future__ import annotations

import json
from typing import Any

from providers.sse import SSEEvent
from providers.streams import StreamTranslator
from providers.translate import usage_of
from workflows.contracts import Usage

ANTHROPIC_USAGE = {
    "input_tokens": 1200,
    "output_tokens": 300,
    "cache_read_input_tokens": 5000,
    "cache_creation_input_tokens": 900,
    "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 500},
    "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
}
CODE_RUN = {"type": "server_tool_use", "id": "srvtoolu_2", "name": "bash_code_execution"}
SEARCH = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}


def test_anthropic_answer_reports_hour_writes_searches_and_code_runs() -> None:
    """One-hour writes stay inside the cache writes; searches come from ``server_tool_use``;
    code runs are counted from the answer's blocks."""
    body = {
        "content": [SEARCH, {"type": "text", "text": "x"}, CODE_RUN, CODE_RUN],
        "usage": ANTHROPIC_USAGE,
    }
    assert usage_of(body, "anthropic") == Usage(
        input_tokens=1200,
        output_tokens=300,
        cached_input_tokens=5000,
        cache_write_tokens=900,
        cache_write_1h_tokens=500,
        web_searches=3,
        code_executions=2,
    )


def sse(kind: str, data: dict[str, Any]) -> SSEEvent:
    return SSEEvent(kind, json.dumps({"type": kind, **data}))


def test_anthropic_stream_reports_searches_in_its_last_usage() -> None:
    """The final ``message_delta`` usage carries the searches; code runs are counted as
    their blocks start; earlier figures are kept where the delta is silent."""
    start_usage = {"input_tokens": 1200, "output_tokens": 1, "cache_creation_input_tokens": 900}
    events = [
        sse("message_start", {"message": {"id": "m", "model": "c", "usage": start_usage}}),
        sse("content_block_start", {"index": 0, "content_block": SEARCH}),
        sse("content_block_start", {"index": 1, "content_block": CODE_RUN}),
        sse("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": ANTHROPIC_USAGE}),
        sse("message_stop", {}),
    ]
    translator = StreamTranslator("anthropic", "anthropic")
    for event in events:
        translator.feed(event)
    usage = translator.usage
    assert (usage.web_searches, usage.code_executions, usage.cache_write_1h_tokens) == (3, 1, 500)
    assert usage.input_tokens == 1200 and usage.output_tokens == 300


RESPONSES_USAGE = {
    "input_tokens": 9000,
    "input_tokens_details": {"cached_tokens": 8000},
    "output_tokens": 700,
}
OUTPUT = [
    {"type": "web_search_call", "id": "ws_1", "status": "completed"},
    {"type": "web_search_call", "id": "ws_2", "status": "completed"},
    {"type": "file_search_call", "id": "fs_1", "status": "completed"},
    {"type": "code_interpreter_call", "id": "ci_1", "status": "completed"},
    {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": "x"}]},
]


def test_responses_answer_counts_its_built_in_tool_calls() -> None:
    """Each ``web_search_call``, ``file_search_call`` and ``code_interpreter_call`` item is
    one billed use."""
    usage = usage_of({"output": OUTPUT, "usage": RESPONSES_USAGE}, "responses")
    assert usage == Usage(1000, 700, 8000, 0, 0, web_searches=2, file_searches=1, code_executions=1)


def test_responses_stream_counts_tool_calls_even_without_the_final_output() -> None:
    """Items seen as the stream goes are counted when ``response.completed`` omits them."""
    events = [sse("response.created", {"response": {"id": "r", "model": "m"}})]
    events += [
        sse("response.output_item.done", {"output_index": n, "item": item})
        for n, item in enumerate(OUTPUT)
    ]
    done = {"id": "r", "model": "m", "status": "completed", "usage": RESPONSES_USAGE}
    events.append(sse("response.completed", {"response": {**done, "output": []}}))
    translator = StreamTranslator("responses", "responses")
    for event in events:
        translator.feed(event)
    usage = translator.usage
    assert (usage.web_searches, usage.file_searches, usage.code_executions) == (2, 1, 1)
    assert translator.usage_known
