"""Server tools and media through the real SDKs: a searched call is reserved at its max_uses and
billed the searches it made; what runcap cannot bound is a 400 in the caller's format."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from sqlalchemy import select
from sqlmodel import col

from api.request_costs import SEARCH_RESULT_TOKENS
from db.models import LedgerEntry
from tests.gateway.conftest import SEARCH_MODEL, Gateway
from tests.polling import eventually
from workflows.contracts import MICROS_PER_USD

ASK: Any = [{"role": "user", "content": "what changed in the release?"}]
SEARCH: Any = {"type": "web_search_20250305", "name": "web_search"}
CLIENTS: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """SDK clients made by a test are closed after it."""
    yield
    while CLIENTS:
        await CLIENTS.pop().close()


async def clients(gateway: Gateway) -> tuple[anthropic.AsyncAnthropic, openai.AsyncOpenAI]:
    key = (await gateway.create_key(budget_usd="5"))["key"]
    claude = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=key, max_retries=0)
    oai = openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0)
    CLIENTS.extend([claude, oai])
    return claude, oai


async def ledger_row(gateway: Gateway, call_id: str) -> Any:
    def row() -> Any:
        with gateway.engine.connect() as conn:
            query = select(LedgerEntry).where(col(LedgerEntry.call_id) == call_id)
            return conn.execute(query).first()

    found = await eventually(row)
    assert found is not None, f"no ledger row for {call_id}"
    return found


@pytest.mark.parametrize("stream", [False, True])
async def test_searches_are_reserved_at_max_uses_and_billed_as_reported(
    gateway: Gateway, stream: bool
) -> None:
    """max_uses=3 reserves three searches' fees and results; the two the provider reports
    are billed at $10 per 1,000 on top of the tokens, within the reservation."""
    claude, _ = await clients(gateway)
    await gateway.fake.script(SEARCH_MODEL, web_searches=2, reply="the release notes say ...")
    try:
        kwargs: Any = {"model": SEARCH_MODEL, "max_tokens": 200, "messages": ASK}
        tools: Any = [{**SEARCH, "max_uses": 3}]
        message: Any
        if stream:
            async with claude.messages.stream(**kwargs, tools=tools) as answer:
                message = await answer.get_final_message()
                call_id = answer.response.headers["x-runcap-call-id"]
        else:
            raw = await claude.messages.with_raw_response.create(**kwargs, tools=tools)
            message, call_id = await raw.parse(), raw.headers["x-runcap-call-id"]
    finally:
        await gateway.fake.reset()
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_search_requests == 2
    row = await ledger_row(gateway, call_id)
    # $1 per million input tokens and $2 per million output tokens: a micro-dollar a token.
    tokens = message.usage.input_tokens + 2 * message.usage.output_tokens
    assert row.cost_micros == tokens + 2 * 10_000
    # Held: the input bytes and three searches' results, 200 output tokens, three fees.
    assert row.reserved_micros >= 3 * SEARCH_RESULT_TOKENS + 200 * 2 + 3 * 10_000
    assert row.cost_micros <= row.reserved_micros


async def test_unbounded_tools_and_files_get_a_400_in_the_anthropic_format(
    gateway: Gateway,
) -> None:
    """No max_uses, a PDF by URL, a tool its model has no price for: the Anthropic SDK raises
    a BadRequestError saying why, and the provider never sees the call."""
    claude, _ = await clients(gateway)
    pdf = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"model": SEARCH_MODEL, "tools": [SEARCH]}, "max_uses"),
        ({"model": SEARCH_MODEL, "messages": [{"role": "user", "content": [pdf]}]}, "by URL"),
        ({"model": "fake-small", "tools": [{**SEARCH, "max_uses": 1}]}, "no price for it"),
    ]
    for request, why in cases:
        with pytest.raises(anthropic.BadRequestError, match=why) as info:
            await claude.messages.create(**{"max_tokens": 50, "messages": ASK, **request})
        body: Any = info.value.body
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert await gateway.fake.requests(SEARCH_MODEL) == []


async def test_unbounded_tools_and_media_get_a_400_in_the_openai_format(gateway: Gateway) -> None:
    """A Responses web search without max_tool_calls, a chat search model's options, a file
    id: the OpenAI SDK raises a BadRequestError naming the parameter."""
    _, oai = await clients(gateway)
    with pytest.raises(openai.BadRequestError, match="max_tool_calls") as info:
        await oai.responses.create(
            model="gpt-5.6-terra", input="news?", tools=[{"type": "web_search"}]
        )
    assert info.value.status_code == 400
    body: Any = info.value.body
    assert body["param"] == "max_tool_calls" and body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError, match="web_search_options"):
        await oai.chat.completions.create(
            model="fake-small", messages=ASK, extra_body={"web_search_options": {}}
        )
    file_part: Any = {"type": "file", "file": {"file_id": "file-abc"}}
    with pytest.raises(openai.BadRequestError, match="file id"):
        await oai.chat.completions.create(
            model="fake-small", messages=[{"role": "user", "content": [file_part]}]
        )


async def test_an_image_by_url_is_reserved_at_its_documented_most(gateway: Gateway) -> None:
    """A tiny request with one image URL holds the image's most tokens, not its few bytes."""
    _, oai = await clients(gateway)
    image: Any = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    raw = await oai.chat.completions.with_raw_response.create(
        model="fake-small", max_tokens=16, messages=[{"role": "user", "content": [image]}]
    )
    row = await ledger_row(gateway, raw.headers["x-runcap-call-id"])
    # fake-small bills $0.50 per million input tokens: the image's 3,780 hold 1,890 micro-USD.
    assert row.reserved_micros >= 1_890
    assert Decimal(raw.headers["x-runcap-cost-usd"]) * MICROS_PER_USD <= row.reserved_micros
