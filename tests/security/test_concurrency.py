"""Attack: more calls at once than an api instance can hold, and connections that never finish
their headers. Calls past ``RUNCAP_MAX_CONCURRENT_CALLS`` get a 503 with ``Retry-After`` in the
caller's format; uvicorn's own limits bound connections, their idle time and their headers."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import anthropic
import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.polling import eventually
from tests.security.conftest import HELLO, Stack

FLOOR = {"floor_price_input_per_mtok_usd": "1", "floor_price_output_per_mtok_usd": "2"}


async def test_calls_past_the_instance_cap_get_503_with_retry_after(security_stack: Stack) -> None:
    """With 2 calls in flight on an instance capped at 2, a third gets 503 and Retry-After, in
    the OpenAI envelope on /v1 and the Anthropic one on /v1/messages; the 2 still succeed."""
    fake = security_stack.fake
    model = f"slow-{uuid.uuid4().hex[:8]}"
    await fake.script(model, latency_ms=3000)
    async with security_stack.api(max_concurrent_calls=2, **FLOOR) as api:
        key = await api.create_key()
        oai = AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=key, max_retries=0)
        ant = AsyncAnthropic(base_url=api.base_url, api_key=key, max_retries=0)
        async with oai, ant:
            held = [
                asyncio.create_task(
                    oai.chat.completions.create(model=model, messages=HELLO, max_tokens=16)
                )
                for _ in range(2)
            ]

            async def both_at_the_provider() -> bool:
                return (await fake.concurrency()).get(model, {}).get("running", 0) == 2

            assert await eventually(both_at_the_provider)
            with pytest.raises(openai.APIStatusError) as chat:
                await oai.chat.completions.create(model=model, messages=HELLO, max_tokens=16)
            with pytest.raises(anthropic.APIStatusError) as messages:
                await ant.messages.create(model=model, messages=HELLO, max_tokens=16)
            served = await asyncio.gather(*held)
    print(f"third call: {chat.value.status_code} {chat.value.message}")
    assert chat.value.status_code == messages.value.status_code == 503
    assert int(chat.value.response.headers["retry-after"]) >= 1
    assert int(messages.value.response.headers["retry-after"]) >= 1
    assert chat.value.body["code"] == "overloaded"  # type: ignore[index]
    assert messages.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert all(reply.choices for reply in served)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes | None:
    """What the server sent before closing the connection (nothing if it reset it), or None if
    it is still open."""
    try:
        async with asyncio.timeout(seconds):
            return await reader.read()
    except ConnectionResetError:
        return b""
    except TimeoutError:
        return None


async def test_headers_that_never_end_are_cut_off(security_stack: Stack) -> None:
    """A connection that sends no request, or headers that never finish, is closed after the
    header timeout, with no key needed to try."""
    async with security_stack.api(server_header_timeout_seconds=0.5) as api:
        host, port = api.base_url.removeprefix("http://").split(":")
        idle_reader, idle = await asyncio.open_connection(host, int(port))
        slow_reader, slow = await asyncio.open_connection(host, int(port))
        slow.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        try:
            idle_end = await _closed_within(idle_reader, 5)
            slow_end = await _closed_within(slow_reader, 5)
        finally:
            idle.close()
            slow.close()
    print(f"closed after the header timeout: idle {idle_end == b''}, slow {slow_end == b''}")
    assert idle_end == b"" and slow_end == b"", "an unfinished request kept its connection"


def resident_mib() -> int:
    """This process's resident memory now (the api is served in it), in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") >> 20


async def test_a_huge_header_is_cut_off(security_stack: Stack) -> None:
    """64 MiB of one header get 431 and a closed connection, and the api keeps none of it
    (``RUNCAP_SERVER_MAX_HEADER_BYTES``, 64 KiB); no key is needed to try."""
    async with security_stack.api() as api:
        host, port = api.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        before = resident_mib()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * (1 << 20)
        try:
            for _ in range(64):
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 5)
        except (ConnectionError, TimeoutError):
            pass  # cut off while sending
        grown = resident_mib() - before
        answer = await _closed_within(reader, 5)
        writer.close()
    print(f"memory grown by 64 MiB of one header: {grown} MiB; answer {(answer or b'')[:40]!r}")
    assert grown < 32
    assert answer is not None and answer.startswith(b"HTTP/1.1 431"), answer


async def test_the_server_bounds_connections(security_stack: Stack) -> None:
    """uvicorn holds at most ``RUNCAP_SERVER_LIMIT_CONCURRENCY`` connections and answers past it
    with 503: a client's idle connections cannot pile up without bound."""
    async with security_stack.api(max_concurrent_calls=2, server_limit_concurrency=4) as api:
        host, port = api.base_url.removeprefix("http://").split(":")
        opened = [await asyncio.open_connection(host, int(port)) for _ in range(4)]
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await _closed_within(reader, 5)
            writer.close()
        finally:
            for _, held in opened:
                held.close()
    assert answer is not None and answer.startswith(b"HTTP/1.1 503"), answer
