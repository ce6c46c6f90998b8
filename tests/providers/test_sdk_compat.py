"""The official OpenAI and Anthropic SDKs accept the fake provider's answers and streams."""

from __future__ import annotations

import json

from anthropic import AsyncAnthropic
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionFunctionToolParam

from fake_provider import FakeProvider

TOOL = {"name": "read_file", "arguments": {"path": "a.py"}}


async def test_openai_sdk_reads_answers_and_streams(fake: FakeProvider) -> None:
    """chat.completions.create parses the fake's answer, tool call and streamed usage."""
    await fake.script("gpt-4.1-mini", tool_call=TOOL)
    async with AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0) as client:
        plain = await client.chat.completions.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=20
        )
        assert plain.choices[0].message.content == "echo: hi"
        tool: ChatCompletionFunctionToolParam = {
            "type": "function",
            "function": {"name": "read_file", "parameters": {}},
        }
        called = await client.chat.completions.create(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": "read"}],
            tools=[tool],
        )
        [tool_call] = called.choices[0].message.tool_calls or []
        assert json.loads(tool_call.function.arguments) == {"path": "a.py"}  # type: ignore[union-attr]
        stream = await client.chat.completions.create(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_anthropic_sdk_reads_answers_and_streams(fake: FakeProvider) -> None:
    """messages.create and messages.stream parse the fake's answer, tool use and usage."""
    await fake.script("fake-large", tool_call=TOOL, cached_tokens=2)
    async with AsyncAnthropic(
        base_url=fake.anthropic_base_url, api_key="k", max_retries=0
    ) as client:
        plain = await client.messages.create(
            model="fake-large", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        assert plain.content[0].type == "text" and plain.content[0].text == "echo: hi"
        async with client.messages.stream(
            model="fake-large",
            max_tokens=50,
            messages=[{"role": "user", "content": "read"}],
            tools=[{"name": "read_file", "input_schema": {"type": "object"}}],
        ) as stream:
            final = await stream.get_final_message()
        assert final.stop_reason == "tool_use"
        assert final.content[-1].type == "tool_use" and final.content[-1].input == {"path": "a.py"}
        assert final.usage.cache_read_input_tokens == 2
