"""Attack: an output bound of 2^63 tokens. It overflowed the limiter's insert and OpenTelemetry's
int64 attributes, and a reservation on it means nothing. A bound past the model's own output
limit (or the api's setting) is refused with a 400 in the caller's own format."""

from __future__ import annotations

import anthropic
import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.security.conftest import HELLO, Stack

HUGE = 2**63 - 1


async def test_a_huge_output_bound_is_refused_in_each_format(security_stack: Stack) -> None:
    """max_tokens, max_completion_tokens and max_output_tokens of 2^63-1 get a 400 that names
    the limit, from chat completions, Responses and Anthropic messages; nothing is reserved."""
    async with security_stack.api() as api:
        key = await api.create_key(rpm=100, tpm=1_000_000)
        oai = AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=key, max_retries=0)
        ant = AsyncAnthropic(base_url=api.base_url, api_key=key, max_retries=0)
        async with oai, ant:
            refusals: list[openai.BadRequestError | anthropic.BadRequestError] = []
            with pytest.raises(openai.BadRequestError) as chat:
                await oai.chat.completions.create(model="gpt-4.1", messages=HELLO, max_tokens=HUGE)
            refusals.append(chat.value)
            with pytest.raises(openai.BadRequestError) as completion:
                await oai.chat.completions.create(
                    model="gpt-4.1",
                    messages=HELLO,
                    max_completion_tokens=HUGE,
                )
            refusals.append(completion.value)
            with pytest.raises(openai.BadRequestError) as responses:
                await oai.responses.create(model="gpt-4.1", input="hi", max_output_tokens=HUGE)
            refusals.append(responses.value)
            with pytest.raises(anthropic.BadRequestError) as messages:
                await ant.messages.create(
                    model="claude-haiku-4-5",
                    messages=HELLO,
                    max_tokens=HUGE,
                    timeout=30,  # else the SDK itself refuses a bound this long, without sending
                )
            refusals.append(messages.value)
    for refusal in refusals:
        print(f"{type(refusal).__module__}: {refusal.status_code} {refusal.message}")
    assert chat.value.body["code"] == "invalid_request"  # type: ignore[index]
    assert "32768" in chat.value.message and "gpt-4.1" in chat.value.message
    assert "32768" in completion.value.message and "32768" in responses.value.message
    assert messages.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "64000" in messages.value.message


async def test_the_models_own_limit_and_the_setting_bound_the_output(
    security_stack: Stack,
) -> None:
    """A bound at a model's limit is served, one token more is refused; a model with no known
    limit is bounded by ``RUNCAP_MAX_OUTPUT_TOKENS``."""
    floor = {"floor_price_input_per_mtok_usd": "1", "floor_price_output_per_mtok_usd": "2"}
    async with security_stack.api(max_output_tokens=50_000, **floor) as api:
        key = await api.create_key(budget_usd="50")
        async with AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=key, max_retries=0) as oai:
            at_limit = await oai.chat.completions.create(
                model="gpt-4.1",
                messages=HELLO,
                max_tokens=32_768,
            )
            with pytest.raises(openai.BadRequestError) as over:
                await oai.chat.completions.create(
                    model="gpt-4.1", messages=HELLO, max_tokens=32_769
                )
            unknown = await oai.chat.completions.create(
                model="made-up-model",
                messages=HELLO,
                max_tokens=50_000,
            )
            with pytest.raises(openai.BadRequestError) as past_setting:
                await oai.chat.completions.create(
                    model="made-up-model",
                    messages=HELLO,
                    max_tokens=50_001,
                )
    assert at_limit.choices and unknown.choices
    assert "32768" in over.value.message
    assert "50000" in past_setting.value.message
