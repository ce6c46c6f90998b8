"""Answer and usage translation between chat completions, Anthropic and Responses."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from providers.formats import chat, messages, responses
from providers.formats.hub import Meter, Reply, StopReason, Text, ToolCall
from providers.translate import FORMATS, translate_reply, usage_of
from workflows.contracts import Usage, WireFormat

APIS: list[WireFormat] = ["openai", "anthropic", "responses"]
PAIRS = [(a, b) for a, b in itertools.permutations(APIS, 2)]


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
