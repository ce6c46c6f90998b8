"""A call end to end through the api with the openai SDK, checked in the ledger and the run."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest

from tests.faults.gateway import MESSAGES, Answer, Gateway
from tests.faults.money import assert_settled, ledger_rows

pytestmark = pytest.mark.prod


async def test_openai_sdk_call_is_answered_and_billed_once(gateway: Gateway) -> None:
    """The SDK gets its completion (plain and streamed); the ledger holds each call once, at
    the cost the headers said, tagged with its task; the run's figures equal the ledger."""
    key = await gateway.create_key("1")
    task = uuid.uuid4().hex[:8]
    messages: Any = MESSAGES
    tags = {"metadata": {"tags": ["agent:coder", f"task:{task}", "step:edit"]}}
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.url()}/v1", api_key=key.secret, max_retries=0
    ) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="fake-small", messages=messages, max_tokens=50, extra_body=tags
        )
        completion = raw.parse()
        assert completion.choices[0].message.content
        stream = await client.chat.completions.create(
            model="fake-small", messages=messages, max_tokens=50, stream=True, extra_body=tags
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text
    answer = Answer(200, dict(raw.headers), completion.model_dump(), 0)
    run_id = f"{key.id}.{task}"
    spend = await assert_settled(gateway, run_id, [answer])
    assert spend.calls == 2
    rows = await ledger_rows(gateway, run_id, calls=2)
    assert all(row.provider == "fake" and row.requested_model == "fake-small" for row in rows)
    assert all({"agent:coder", f"task:{task}", "step:edit"} <= set(row.tags) for row in rows)
    assert all(0 < row.cost_micros <= row.reserved_micros for row in rows)
