"""Refusals agents understand: a budget 429 that stops retries at once, spend that reads
cleanly, and the probe Claude Code sends before its first call."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.agent_clis import CLAUDE_CODE, ensure
from tests.gateway.conftest import Gateway
from tests.gateway.test_agent_clis import QUIET_CLAUDE, run_cli

MESSAGES: list[Any] = [{"role": "user", "content": "make the failing test pass"}]


async def test_a_budget_refusal_returns_at_once_through_the_anthropic_sdk(
    gateway: Gateway,
) -> None:
    """With the SDK's default retries, a budget 429 is final: one request, answered within a
    second, with what the call needs, what the run has, and no Retry-After."""
    key = await gateway.create_key(budget_usd="0.000010")
    client = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=key["key"])
    began = time.monotonic()
    with pytest.raises(anthropic.RateLimitError) as info:
        await client.messages.create(model="fake-large", max_tokens=1000, messages=MESSAGES)
    took = time.monotonic() - began
    await client.close()
    assert took < 1.0, f"the refusal took {took:.2f} s"
    assert gateway.seen[("/v1/messages", key["key"][:12])] == 1  # no retry
    response = info.value.response
    assert response.headers["x-should-retry"] == "false"
    assert "retry-after" not in response.headers
    message = info.value.message
    assert "needs $" in message and "budget" in message


async def test_claude_code_stops_at_a_budget_refusal(gateway: Gateway, tmp_path: Path) -> None:
    """Claude Code, refused for budget, sends its call once and gives up at once, with the
    refusal's words, instead of retrying for minutes."""
    claude = await asyncio.to_thread(ensure, CLAUDE_CODE)
    key = await gateway.create_key(budget_usd="0.000010")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **QUIET_CLAUDE,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.base_url,
        "ANTHROPIC_API_KEY": key["key"],
    }
    code, out, err = await run_cli([str(claude), "-p", "fix the bug"], home, env)
    assert code != 0
    assert "budget" in (out + err)
    assert gateway.seen[("/v1/messages", key["key"][:12])] == 1, gateway.seen


async def test_spend_counts_failed_calls_apart_from_models(gateway: Gateway) -> None:
    """A call whose every target failed costs nothing and served no model: it is counted in
    failed_calls, and grouping by model shows no model named ""."""
    await gateway.fake.script("fake-small", faults=[{"status": 500, "times": None}])
    key = await gateway.create_key(budget_usd="1")
    task = uuid.uuid4().hex[:8]
    client = openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=key["key"], max_retries=0
    )
    tags = {"metadata": {"tags": [f"task:{task}"]}}
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(
            model="fake-small",
            messages=MESSAGES,
            extra_body=tags,
        )
    await gateway.fake.reset()
    await client.chat.completions.create(
        model="fake-small",
        messages=MESSAGES,
        extra_body=tags,
    )
    await client.close()
    spend = (
        await gateway.admin.get("/admin/spend", params={"group_by": "model", "tag": f"task:{task}"})
    ).json()
    assert [row["group"] for row in spend["rows"]] == ["fake-small"]
    assert spend["rows"][0]["calls"] == 1 and spend["total_calls"] == 1
    assert spend["failed_calls"] == 1


async def test_claude_codes_probe_is_answered(gateway: Gateway) -> None:
    """``HEAD /`` (Claude Code's connectivity check) gets 200."""
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        assert (await http.head("/")).status_code == 200
