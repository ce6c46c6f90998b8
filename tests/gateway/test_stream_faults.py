"""Streams that fail, fail loudly: a provider stream that breaks before any byte reached the
client moves to the next target; one that breaks after ends with an error in the caller's own
format, and either way the call is billed only what was received."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.gateway.conftest import Gateway, settled_spend
from tests.gateway.test_call_path import ledger

MESSAGES: list[Any] = [{"role": "user", "content": "make the failing test pass"}]
LONG = " ".join(f"word{i}" for i in range(40))


@pytest.fixture(autouse=True)
async def fresh_fake(gateway: Gateway) -> None:
    await gateway.fake.reset()


async def test_a_stream_dropped_before_any_byte_falls_back(gateway: Gateway) -> None:
    """The primary drops its stream at once: nothing reached the client, so the fallback
    serves the whole answer and only it is billed."""
    await gateway.fake.script("fake-large", drop_stream_after=0)
    key = await gateway.create_key(budget_usd="1")
    client = openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=key["key"], max_retries=0
    )
    stream = await client.chat.completions.create(
        model="coder", messages=MESSAGES, max_tokens=50, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    await client.close()
    assert text.startswith("echo:")
    (row,) = ledger(gateway, key["id"])
    assert (row.status, row.model) == ("ok", "fake-small")
    assert [a["ok"] for a in row.attempts] == [False, True]


async def test_a_stream_broken_midway_raises_in_the_openai_sdk(gateway: Gateway) -> None:
    """The stream breaks after chunks went out: the OpenAI SDK raises (no silent truncation),
    and the call is billed what was received, below its reservation."""
    await gateway.fake.script("fake-small", reply=LONG, drop_stream_after=5)
    key = await gateway.create_key(budget_usd="1")
    client = openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=key["key"], max_retries=0
    )
    seen = ""
    with pytest.raises(openai.APIError):
        stream = await client.chat.completions.create(
            model="fake-small", messages=MESSAGES, max_tokens=500, stream=True
        )
        async for chunk in stream:
            seen += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    await client.close()
    assert seen and len(seen) < len(LONG)
    spend = await settled_spend(gateway, key["id"])
    (row,) = ledger(gateway, key["id"])
    assert row.status == "broken"
    assert len(seen.encode()) <= row.output_tokens < 500
    assert 0 < row.cost_micros < row.reserved_micros
    assert spend.spent_micros == row.cost_micros and spend.reserved_micros == 0


async def test_a_stream_broken_midway_raises_in_the_anthropic_sdk(gateway: Gateway) -> None:
    """The same break seen through the Anthropic SDK: an error event it raises on."""
    await gateway.fake.script("fake-small", reply=LONG, drop_stream_after=5)
    key = await gateway.create_key(budget_usd="1")
    client = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=key["key"], max_retries=0)
    with pytest.raises(anthropic.APIError):
        async with client.messages.stream(
            model="fake-small", max_tokens=500, messages=MESSAGES
        ) as stream:
            async for _ in stream.text_stream:
                pass
    await client.close()
    (row,) = ledger(gateway, key["id"])
    assert row.status == "broken" and 0 < row.cost_micros < row.reserved_micros
