"""Server tools and media in a request: bounded from the request and reserved, or refused."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import BadRequest
from api.request_costs import (
    ANTHROPIC_IMAGE_TOKENS,
    FILE_SEARCH_CHUNK_TOKENS,
    GPT_4O_MINI_IMAGE_TOKENS,
    OPENAI_IMAGE_TOKENS,
    SEARCH_RESULT_TOKENS,
    inspect,
    priced,
)
from workflows.budget import fee_bound_micros
from workflows.contracts import Price, Target, ToolFee

SEARCHING = Price(3_000_000, 15_000_000, tools=(ToolFee("web_search", 10_000_000),))
CLAUDE = Target("anthropic", "claude-x", "anthropic", SEARCHING)
GPT = Target("openai-responses", "gpt-x", "responses", SEARCHING)
MINI = Target("openai", "gpt-4o-mini", "openai", Price(150_000, 600_000))


def anthropic(*tools: dict[str, Any], content: Any = "hi", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], "tools": list(tools), **extra}


def refusal(body: dict[str, Any], inbound: Any = "anthropic") -> BadRequest:
    with pytest.raises(BadRequest) as info:
        inspect(body, inbound)
    assert info.value.status == 400 and info.value.code == "unbounded_cost"
    return info.value


def test_anthropic_web_search_is_reserved_at_max_uses() -> None:
    """Each search the tool may make holds its fee and an allowance for its results."""
    extras = inspect(
        anthropic({"type": "web_search_20250305", "name": "s", "max_uses": 8}), "anthropic"
    )
    assert extras.uses == {"web_search": 8}
    assert extras.input_tokens([CLAUDE]) == 8 * SEARCH_RESULT_TOKENS
    [target] = priced([CLAUDE], extras, "anthropic")
    assert target.price.tools == (ToolFee("web_search", 10_000_000, 8),)
    assert fee_bound_micros(target.price) == 80_000


def test_unbounded_server_tools_are_refused_saying_how_to_bound_them() -> None:
    """No max_uses, no max_content_tokens, an unknown server tool, an MCP server: a 400."""
    assert "max_uses" in refusal(anthropic({"type": "web_search_20250305", "name": "s"})).message
    fetch = {"type": "web_fetch_20250910", "name": "f", "max_uses": 2}
    assert refusal(anthropic(fetch)).param == "tools[0].max_content_tokens"
    assert "does not know" in refusal(anthropic({"type": "advisor_20990101", "name": "a"})).message
    huge = {"type": "web_search_20250305", "name": "s", "max_uses": 2**63}
    assert "1,000,000" in refusal(anthropic(huge)).message
    mcp = anthropic(mcp_servers=[{"type": "url", "url": "https://mcp.example"}])
    assert refusal(mcp).param == "mcp_servers"


def test_web_fetch_holds_its_pages_and_client_tools_hold_nothing() -> None:
    """Fetched pages are input tokens, bounded by max_uses times max_content_tokens; tools
    the client runs cost nothing the request does not already carry."""
    fetch = {"type": "web_fetch_20250910", "name": "f", "max_uses": 3, "max_content_tokens": 5000}
    client: list[dict[str, Any]] = [
        {"name": "read", "input_schema": {}},
        {"type": "bash_20250124", "name": "bash"},
    ]
    extras = inspect(anthropic(fetch, *client), "anthropic")
    assert extras.uses == {} and extras.input_tokens([CLAUDE]) == 15_000


def test_responses_tools_need_max_tool_calls() -> None:
    """web_search and file_search are billed per call: max_tool_calls bounds them; without it,
    or with a tool runcap cannot price, the call is refused."""
    web = {"input": "x", "tools": [{"type": "web_search"}]}
    assert refusal(web, "responses").param == "max_tool_calls"
    both = {
        "input": "x",
        "max_tool_calls": 3,
        "tools": [{"type": "web_search_preview"}, {"type": "file_search", "max_num_results": 4}],
    }
    extras = inspect(both, "responses")
    assert extras.uses == {"web_search": 3, "file_search": 3}
    assert extras.tool_tokens == 3 * SEARCH_RESULT_TOKENS + 3 * 4 * FILE_SEARCH_CHUNK_TOKENS
    for kind in ("image_generation", "mcp"):
        refusal({"input": "x", "max_tool_calls": 1, "tools": [{"type": kind}]}, "responses")
    assert refusal({"input": "x", "prompt": {"id": "pmpt_1"}}, "responses").param == "prompt"


def test_a_tool_without_a_price_is_refused_only_where_it_can_run() -> None:
    """A target of the caller's format must price the tool; one of another format cannot run
    it and reserves no fee."""
    extras = inspect(
        anthropic({"type": "web_search_20250305", "name": "s", "max_uses": 1}), "anthropic"
    )
    unpriced = Target("anthropic", "claude-y", "anthropic", Price(1, 1))
    with pytest.raises(BadRequest, match="no price for it") as info:
        priced([unpriced], extras, "anthropic")
    assert info.value.code == "unpriced_tool"
    [other] = priced([GPT], extras, "anthropic")
    assert fee_bound_micros(other.price) == 0


def test_images_by_url_hold_the_providers_documented_most() -> None:
    """An image by URL holds the most its provider bills for one; an inline one only what its
    bytes do not already cover; the dearest target of the chain decides."""
    url = {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}
    inline = {"type": "image", "source": {"type": "base64", "data": "A" * 1000}}
    extras = inspect(anthropic(content=[url, inline]), "anthropic")
    assert extras.input_tokens([CLAUDE]) == ANTHROPIC_IMAGE_TOKENS * 2 - 1000
    chat = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://x/b.png"}}],
            }
        ]
    }
    extras = inspect(chat, "openai")
    assert extras.input_tokens([GPT]) == OPENAI_IMAGE_TOKENS
    assert extras.input_tokens([GPT, MINI]) == GPT_4O_MINI_IMAGE_TOKENS
    responses = {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}
    assert inspect(responses, "responses").input_tokens([GPT]) == OPENAI_IMAGE_TOKENS


def test_files_by_url_or_id_and_audio_are_refused() -> None:
    """A PDF by URL, a file id, audio in or out: runcap cannot see or price them."""
    pdf = {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}
    assert "inline" in refusal(anthropic(content=[pdf])).message
    part = {"type": "input_file", "file_url": "https://x/a.pdf"}
    refusal({"input": [{"role": "user", "content": [part]}]}, "responses")
    chat_file = {"type": "file", "file": {"file_id": "file-1"}}
    refusal({"messages": [{"role": "user", "content": [chat_file]}]}, "openai")
    audio = {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}
    refusal({"messages": [{"role": "user", "content": [audio]}]}, "openai")
    refusal({"messages": [], "modalities": ["text", "audio"]}, "openai")
    refusal({"messages": [], "web_search_options": {}}, "openai")
    inline_pdf = {"type": "document", "source": {"type": "base64", "data": "JVBER"}}
    assert inspect(anthropic(content=[inline_pdf]), "anthropic").input_tokens([CLAUDE]) == 0


def test_tool_arguments_are_not_read_as_content() -> None:
    """A model's tool call whose arguments look like a file part is not refused."""
    call = {"type": "tool_use", "id": "t", "name": "f", "input": {"type": "file", "file_id": "x"}}
    body = {"messages": [{"role": "assistant", "content": [call]}]}
    assert inspect(body, "anthropic").input_tokens([CLAUDE]) == 0


def test_one_hour_cache_rates_are_reserved_only_when_asked_for() -> None:
    """A one-hour cache write can only happen when a part asks for it (``ttl: 1h``), so only
    then does the reservation hold its dearer rate."""
    hour = Price(3_000_000, 15_000_000, 300_000, 3_750_000, cache_write_1h=6_000_000)
    target = Target("anthropic", "claude-x", "anthropic", hour)
    five = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
    long = {**five, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    [plain] = priced([target], inspect(anthropic(content=[five]), "anthropic"), "anthropic")
    assert plain.price.cache_write_1h == 0
    for body in (
        anthropic(content=[long]),
        anthropic({"name": "t", "input_schema": {}, "cache_control": long["cache_control"]}),
        anthropic(system=[long]),
    ):
        [kept] = priced([target], inspect(body, "anthropic"), "anthropic")
        assert kept.price.cache_write_1h == 6_000_000
