"""How both adapters classify failures: retryable or not, message, Retry-After, broken streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from providers import (
    AnthropicProvider,
    OpenAICompatProvider,
    Provider,
    ProviderError,
    make_provider,
)
from tests.providers.wire import (
    SECRET,
    BrokenStream,
    Recorder,
    Sink,
    anthropic_sse,
    call,
    config,
    openai_sse,
)
from workflows.contracts import WireFormat

Respond = Callable[[httpx.Request], httpx.Response]
APIS: list[WireFormat] = ["openai", "anthropic"]
BODY: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def _provider(api: WireFormat, respond: Respond) -> Provider:
    return make_provider(config(api), Recorder(respond).client())


def _error_body(api: WireFormat, kind: str, message: str) -> dict[str, Any]:
    if api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None}}


async def _fail(provider: Provider, api: WireFormat, *, stream: bool) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        if stream:
            await provider.stream(call(BODY, api), Sink())
        else:
            await provider.complete(call(BODY, api))
    return info.value


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [False, True])
async def test_400_is_not_retryable_and_keeps_the_message(api: WireFormat, stream: bool) -> None:
    """A 400 fails the call with the provider's own message."""
    body = _error_body(api, "invalid_request_error", "messages: roles must alternate")
    provider = _provider(api, lambda _: httpx.Response(400, json=body))
    error = await _fail(provider, api, stream=stream)
    assert (error.status, error.retryable) == (400, False)
    assert "messages: roles must alternate" in error.message


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [False, True])
async def test_429_is_retryable_with_retry_after(api: WireFormat, stream: bool) -> None:
    """A 429 is retryable and carries the Retry-After seconds."""
    body = _error_body(api, "rate_limit_error", "slow down")
    provider = _provider(
        api, lambda _: httpx.Response(429, json=body, headers={"retry-after": "7"})
    )
    error = await _fail(provider, api, stream=stream)
    assert (error.status, error.retryable, error.retry_after) == (429, True, 7.0)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({}, None),
    ],
)
async def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    """retry-after-ms wins; a past HTTP date means now; no header means None."""
    provider = _provider("openai", lambda _: httpx.Response(503, json={}, headers=headers))
    error = await _fail(provider, "openai", stream=False)
    assert error.retry_after == expected


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("status", [500, 502, 503, 529, 408])
async def test_server_errors_are_retryable(api: WireFormat, status: int) -> None:
    """5xx, 529 (overloaded) and 408 are retryable."""
    body = _error_body(api, "overloaded_error", "Overloaded")
    error = await _fail(
        _provider(api, lambda _: httpx.Response(status, json=body)), api, stream=False
    )
    assert (error.status, error.retryable) == (status, True)
    assert "Overloaded" in error.message


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [False, True])
async def test_timeout_and_connection_errors_are_retryable(api: WireFormat, stream: bool) -> None:
    """A timeout is a retryable 504; a refused connection a retryable 502."""

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    error = await _fail(_provider(api, timeout), api, stream=stream)
    assert (error.status, error.retryable) == (504, True)
    error = await _fail(_provider(api, refused), api, stream=stream)
    assert (error.status, error.retryable) == (502, True)


async def test_api_key_never_appears_in_errors() -> None:
    """A provider echoing the key back does not leak it into the error."""
    body = {"error": {"message": f"Incorrect API key provided: {SECRET}"}}
    error = await _fail(
        _provider("openai", lambda _: httpx.Response(401, json=body)), "openai", stream=False
    )
    assert SECRET not in str(error)
    assert error.retryable is False


def _broken(chunks: list[bytes]) -> Respond:
    return lambda _: httpx.Response(200, stream=BrokenStream(chunks))


@pytest.mark.parametrize("api", APIS)
async def test_stream_broken_before_any_chunk_is_retryable(api: WireFormat) -> None:
    """A stream that dies before the caller saw anything can be retried elsewhere."""
    error = await _fail(_provider(api, _broken([])), api, stream=True)
    assert (error.status, error.retryable) == (502, True)


async def test_stream_broken_after_chunks_returns_partial_result() -> None:
    """After output reached the caller, a break ends the stream with an error event and
    usage_known False."""
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}}
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Hi"},
    }
    provider = AnthropicProvider(
        config("anthropic"), Recorder(_broken([anthropic_sse([start, delta])])).client()
    )
    sink = Sink()
    result = await provider.stream(call(BODY, "anthropic"), sink)
    sink.chunks += result.tail  # the closing events, held for the ledger
    assert result.broken and len(result.tail) == 1  # the error event, after the ledger row
    assert (result.usage_known, result.chunks_sent, result.usage.input_tokens) == (False, 2, 9)
    assert sink.data()[-1]["type"] == "error"  # the Anthropic SDK raises on it


async def test_stream_without_end_marker_is_not_trusted() -> None:
    """A stream that stops cleanly but never finished keeps usage_known False."""
    chunk = {
        "id": "c",
        "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
    }
    respond: Respond = lambda _: httpx.Response(200, content=openai_sse([chunk], done=False))  # noqa: E731
    result = await OpenAICompatProvider(config("openai"), Recorder(respond).client()).stream(
        call(BODY, "openai"), Sink()
    )
    assert (result.usage_known, result.chunks_sent) == (False, 1)


@pytest.mark.parametrize("api", APIS)
async def test_error_event_before_output_is_retryable(api: WireFormat) -> None:
    """An in-stream overloaded error before any output is a retryable 529."""
    if api == "anthropic":
        content = anthropic_sse(
            [{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
        )
    else:
        content = openai_sse(
            [{"error": {"message": "Overloaded", "type": "overloaded_error"}}], done=False
        )
    error = await _fail(
        _provider(api, lambda _: httpx.Response(200, content=content)), api, stream=True
    )
    assert (error.status, error.retryable) == (529, True)
    assert "Overloaded" in error.message


async def test_non_json_reply_is_retryable() -> None:
    """A 200 with a non-JSON body (a proxy's HTML page) is a retryable 502."""
    provider = AnthropicProvider(
        config("anthropic"), Recorder(lambda _: httpx.Response(200, text="<html>")).client()
    )
    error = await _fail(provider, "anthropic", stream=False)
    assert (error.status, error.retryable) == (502, True)
