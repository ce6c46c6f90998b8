"""The fake provider: a real HTTP server speaking OpenAI chat completions, the Responses API
and Anthropic messages, driven by scripts.

It validates like a real provider, serves any model it is asked for (so a model priced only
through runcap's overrides works offline too), and fails on demand: status codes with
``Retry-After`` (a scripted 404 stands for a model the provider lacks), hangs longer than a
client's timeout, and streams dropped after N events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from fake_provider.render import (
    error_body,
    models_body,
    render_anthropic_stream,
    render_body,
    render_openai_stream,
)
from fake_provider.render_responses import render_responses_stream
from fake_provider.script import (
    DEFAULT_MAX_TOKENS,
    Counter,
    FakeFormat,
    FakeState,
    Fault,
    Script,
    plan_answer,
)
from providers.pricing import PriceBook

JSON = dict[str, Any]


class DroppedStream(Exception):
    """Raised inside a response on purpose, so the server cuts the connection mid-body."""


def _error(
    api: FakeFormat, status: int, message: str, retry_after: float | None = None
) -> Response:
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    return JSONResponse(error_body(api, status, message), status_code=status, headers=headers)


def _validate(api: FakeFormat, body: Any) -> tuple[int, str] | None:
    if not isinstance(body, dict):
        return 400, "the request body must be a JSON object"
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return 400, "model: field required"
    if api == "responses":
        given = body.get("input")
        if not (isinstance(given, str) and given) and not (isinstance(given, list) and given):
            return 400, "input: field required and must be a string or a non-empty list"
        if body.get("previous_response_id"):
            return 400, "previous_response_id: this provider stores no responses"
    else:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return 400, "messages: field required and must be a non-empty list"
    cap = _cap(body)
    if api == "anthropic" and cap is None:
        return 400, "max_tokens: Field required"
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0):
        return 400, f"max_tokens: must be a positive integer, got {cap!r}"
    return None


def _cap(body: JSON) -> Any:
    return body.get("max_output_tokens", body.get("max_completion_tokens", body.get("max_tokens")))


async def _hang(request: Request, millis: int, counter: Counter) -> None:
    """Stay silent until the client gives up or ``millis`` pass."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(millis / 1000):
            while (await request.receive())["type"] != "http.disconnect":
                pass
            counter.cancelled += 1


def _stream(
    events: list[bytes], drop_after: int | None, delay_ms: int, counter: Counter
) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        ended = False
        try:
            for sent, chunk in enumerate(events):
                if drop_after is not None and sent >= drop_after:
                    ended = True  # dropped on purpose, not by the client
                    raise DroppedStream(f"dropped after {sent} events")
                if delay_ms and sent:
                    await asyncio.sleep(delay_ms / 1000)
                yield chunk
            ended = True
        finally:
            if not ended:
                counter.cancelled += 1

    return StreamingResponse(body(), media_type="text/event-stream")


async def _counted(chunks: AsyncIterable[Any], counter: Counter) -> AsyncIterator[Any]:
    """A stream's chunks; the request stops running when the stream ends, however it ends."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        counter.running -= 1


def create_app(prices: PriceBook | None = None) -> FastAPI:
    """The ASGI app; its state lives in ``app.state.fake`` and is reset over the control API."""
    book = prices or PriceBook()
    state = FakeState()
    app = FastAPI(title="runcap fake provider", openapi_url=None)
    app.state.fake = state

    async def answer(request: Request, api: FakeFormat) -> Response:
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        model = body.get("model") if isinstance(body, dict) else None
        counter = state.counter(model) if isinstance(model, str) and model else None
        if counter:
            counter.calls += 1
            state.requests.append(
                {
                    "api": api,
                    "model": model,
                    "body": body,
                    "headers": {
                        k: v
                        for k, v in request.headers.items()
                        if k in ("anthropic-version", "anthropic-beta")
                    },
                }
            )
        problem = _validate(api, body)
        if problem is not None:
            if counter:
                counter.failures += 1
            return _error(api, *problem)
        assert isinstance(body, dict) and counter is not None
        counter.running += 1
        counter.peak = max(counter.peak, counter.running)
        try:
            response = await serve(request, api, body, str(model), counter)
        except BaseException:
            counter.running -= 1
            raise
        if isinstance(response, StreamingResponse):
            response.body_iterator = _counted(response.body_iterator, counter)
        else:
            counter.running -= 1
        return response

    async def serve(
        request: Request, api: FakeFormat, body: JSON, model: str, counter: Counter
    ) -> Response:
        script = state.script_for(model)
        fault = state.next_fault(script) or Fault(times=None)
        if fault.status or fault.timeout or fault.drop_stream_after is not None:
            counter.failures += 1
        if script.latency_ms:
            # Like a slow model: a caller that gives up stops the wait, so shutdown stays quick.
            await _hang(request, script.latency_ms, counter)
        if fault.status:
            message = fault.message or f"injected failure {fault.status}"
            retry_after = fault.retry_after if fault.retry_after is not None else script.retry_after
            return _error(api, fault.status, message, retry_after)
        if fault.timeout:
            await _hang(request, fault.hang_ms, counter)
        cap = int(_cap(body) or DEFAULT_MAX_TOKENS)
        result = plan_answer(api, body, script, cap)
        if body.get("stream") is True:
            if api == "anthropic":
                events = render_anthropic_stream(model, result)
            elif api == "responses":
                events = render_responses_stream(model, result)
            else:
                options = body.get("stream_options") or {}
                events = render_openai_stream(model, result, bool(options.get("include_usage")))
            return _stream(events, fault.drop_stream_after, script.chunk_delay_ms, counter)
        if fault.drop_stream_after is not None:
            raise DroppedStream("dropped before the answer")
        return JSONResponse(render_body(api, model, result))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await answer(request, "openai")

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        return await answer(request, "anthropic")

    @app.post("/v1/responses")
    async def responses(request: Request) -> Response:
        return await answer(request, "responses")

    @app.get("/v1/models")
    async def models() -> JSON:
        return models_body(sorted({*book.models(), "fake-small", "fake-large"}))

    @app.get("/health")
    async def health() -> JSON:
        return {"ok": True}

    @app.post("/_control/script")
    async def set_script(scripts: Script | list[Script]) -> JSON:
        for script in scripts if isinstance(scripts, list) else [scripts]:
            state.scripts[script.model] = script
        return {"ok": True}

    @app.post("/_control/reset")
    async def reset() -> JSON:
        state.reset()
        return {"ok": True}

    @app.get("/_control/calls")
    async def calls() -> JSON:
        return {
            m: {"calls": c.calls, "failures": c.failures, "cancelled": c.cancelled}
            for m, c in state.counters.items()
        }

    @app.get("/_control/concurrency")
    async def concurrency() -> JSON:
        return {m: {"running": c.running, "peak": c.peak} for m, c in state.counters.items()}

    @app.get("/_control/requests")
    async def requests(model: str | None = None) -> list[JSON]:
        return [r for r in state.requests if model is None or r["model"] == model]

    return app
