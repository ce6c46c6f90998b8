"""What every adapter shares: one HTTP exchange, translation, error classification and the
stream loop.

Adapters never retry (Temporal owns retries); every failure becomes a ``ProviderError`` that says
whether another try could help. The API key never appears in an error message. A body in the
caller's own format passes through; any other is translated (``providers.translate``), and a
body the target's format cannot express is refused with a 400 that says what and why.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from providers.base import (
    ChunkSink,
    ProviderCall,
    ProviderConfig,
    ProviderError,
    ProviderReply,
    StreamResult,
    is_retryable_status,
)
from providers.sse import SSEEvent, iter_events
from providers.streams import StreamTranslator, UpstreamStreamError, make_translator
from providers.translate import (
    Untranslatable,
    compacting,
    pass_through,
    strip_runcap_metadata,
    translate_reply,
    translate_request,
    usage_of,
)
from workflows.contracts import Usage, WireFormat

JSON = dict[str, Any]
FORMAT_NAMES: dict[WireFormat, str] = {
    "openai": "chat completions",
    "anthropic": "Anthropic messages",
    "responses": "the Responses API",
}


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, ``retry-after`` seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def error_message(body: bytes) -> str:
    """The provider's own message from either error envelope, else the start of the body."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:500] or "no error body"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if data.get("message"):
            return str(data["message"])
    return json.dumps(data)[:500]


class HttpAdapter:
    """Base of the adapters; subclasses give the URL, the headers and the last touches."""

    api: WireFormat = "openai"

    def __init__(self, config: ProviderConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http

    # ---- what a subclass provides ----
    def url(self) -> str:
        raise NotImplementedError

    def headers(self, call: ProviderCall) -> dict[str, str]:
        raise NotImplementedError

    def shape(self, body: JSON, call: ProviderCall, *, stream: bool) -> JSON:
        """Set the output bound and streaming fields of a body already in ``self.api``."""
        raise NotImplementedError

    # ---- translation ----
    def body(self, call: ProviderCall, *, stream: bool) -> JSON:
        if call.inbound == self.api:
            body = pass_through(call.body, self.api)
        else:
            try:
                body = translate_request(call.body, call.inbound, self.api)
            except Untranslatable as exc:
                speaks = FORMAT_NAMES[self.api]
                message = f"{self.config.name} speaks {speaks} and cannot serve this call: {exc}"
                raise ProviderError(400, message, retryable=False) from None
        body["model"] = call.model
        strip_runcap_metadata(body)
        return self.shape(body, call, stream=stream)

    def usage(self, reply: JSON) -> Usage:
        return usage_of(reply, self.api)

    def reply_for(self, reply: JSON, call: ProviderCall) -> JSON:
        if call.inbound == self.api:
            return reply
        compaction = compacting(call.body, call.inbound, self.api)
        return translate_reply(reply, self.api, call.inbound, compaction=compaction)

    # ---- shared machinery ----
    def _scrub(self, text: str) -> str:
        key = self.config.api_key.get_secret_value()
        return text.replace(key, "***") if key else text

    def _status_error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        return ProviderError(
            status,
            self._scrub(f"{self.config.name}: {error_message(response.content)}"),
            retryable=is_retryable_status(status),
            retry_after=parse_retry_after(response.headers),
        )

    def _transport_error(self, exc: httpx.HTTPError) -> ProviderError:
        timed_out = isinstance(exc, httpx.TimeoutException)
        detail = f"{self.config.name}: {type(exc).__name__}: {exc}"
        return ProviderError(
            504 if timed_out else 502, self._scrub(detail), retryable=True, timed_out=timed_out
        )

    def _timeout_error(self, call: ProviderCall) -> ProviderError:
        detail = f"{self.config.name}: no answer within {call.first_byte_timeout:g} s"
        return ProviderError(504, detail, retryable=True, timed_out=True)

    async def complete(self, call: ProviderCall) -> ProviderReply:
        """One non-streaming exchange, answered in the caller's format."""
        payload = self.body(call, stream=False)
        try:
            async with asyncio.timeout(call.first_byte_timeout):
                response = await self.http.post(
                    self.url(), json=payload, headers=self.headers(call)
                )
        except TimeoutError:
            raise self._timeout_error(call) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._status_error(response)
        try:
            data = response.json()
        except ValueError:
            raise ProviderError(
                502, f"{self.config.name}: reply is not JSON", retryable=True
            ) from None
        return ProviderReply(self.reply_for(data, call), self.usage(data))

    async def stream(self, call: ProviderCall, sink: ChunkSink) -> StreamResult:
        """Stream to ``sink`` as events arrive, holding back the closing events (``tail``).

        A failure before the first chunk raises ``ProviderError`` (another target may serve);
        after it, the result says ``broken`` and what was received, since no retry can undo
        bytes the client has seen.
        """
        payload = self.body(call, stream=True)
        compaction = compacting(call.body, call.inbound, self.api)
        translator = make_translator(self.api, call.inbound, compaction=compaction)
        sent = 0
        tail: list[bytes] = []
        response: httpx.Response | None = None
        try:
            request = self.http.build_request(
                "POST", self.url(), json=payload, headers=self.headers(call)
            )
            async with asyncio.timeout(call.first_byte_timeout):
                response = await self.http.send(request, stream=True)
                if response.status_code >= 400:
                    await response.aread()
                    raise self._status_error(response)
                events = iter_events(response.aiter_lines())
                first = await anext(events, None)
            async for event in _chain_first(first, events):
                chunks = translator.feed(event)
                if translator.complete:
                    tail += chunks  # the closing events wait for the ledger row
                    continue
                for chunk in chunks:
                    await sink(chunk)
                    sent += 1
                if call.progress is not None:
                    call.progress.usage = translator.usage
                    call.progress.output_bytes = translator.output_bytes
                    call.progress.chunks_sent = sent
            tail += translator.finish()
        except TimeoutError:
            if sent:
                return self._broken(translator, sent, TimeoutError("the provider stopped sending"))
            raise self._timeout_error(call) from None
        except (httpx.HTTPError, UpstreamStreamError, ValueError) as exc:
            if sent:
                return self._broken(translator, sent, exc)
            if isinstance(exc, httpx.HTTPError):
                raise self._transport_error(exc) from None
            status = exc.status if isinstance(exc, UpstreamStreamError) else 502
            message = self._scrub(f"{self.config.name}: {exc}")
            raise ProviderError(status, message, retryable=is_retryable_status(status)) from None
        finally:
            if response is not None:
                await response.aclose()
        if not translator.complete:
            if not sent:
                raise ProviderError(502, f"{self.config.name}: empty stream", retryable=True)
            cut = ValueError("the stream ended without its closing event")
            return self._broken(translator, sent, cut)
        return StreamResult(
            translator.usage,
            translator.usage_known,
            sent,
            tail=tail,
            output_bytes=translator.output_bytes,
        )

    def _broken(self, translator: StreamTranslator, sent: int, error: Exception) -> StreamResult:
        """A stream that broke after chunks went out: too late for another target, so it ends
        with an error event in the caller's format (sent after the ledger row, as the tail)."""
        why = self._scrub(f"{self.config.name}: {getattr(error, 'message', None) or error}")
        return StreamResult(
            translator.usage,
            False,
            sent,
            tail=translator.fail(error),
            broken=why,
            output_bytes=translator.output_bytes,
        )


async def _chain_first(
    first: SSEEvent | None, rest: AsyncIterator[SSEEvent]
) -> AsyncIterator[SSEEvent]:
    if first is None:
        return
    yield first
    async for event in rest:
        yield event
