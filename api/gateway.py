"""The model-call path shared by both wire formats: key → policy → tags → route → run → answer.

Every call goes through its run's ``AgentRun`` workflow by way of this process's ``Caller``,
whose task queue hosts the attempt activity: the body stays in this process's memory and the
answer (or the stream) comes straight back from the provider to the client.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError

from api import errors as http_errors
from api.auth import KeyPolicy
from api.body import loads
from api.errors import BadRequest, ForbiddenModel, GatewayError
from api.ratelimit import RateLimiter
from api.routing import Router, load_routes
from api.settings import Settings
from api.tags import agent_of, call_tags, task_of
from caller.caller import Caller, CallFailed, CallSpec, CallStream
from providers.pricing import PriceBook, micros_to_usd
from providers.registry import build_providers
from workflows import errors
from workflows.contracts import CallResult, RunInput, WireFormat

FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
MAX_IDEMPOTENCY_KEY = 200


@asynccontextmanager
async def gateway_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start this process's caller-side worker and routing, with the app's shared clients."""
    settings: Settings = app.state.settings
    configs = settings.provider_configs()
    prices = PriceBook(settings.price_overrides_file, floor=settings.floor_price())
    app.state.router = Router(configs, prices, load_routes(settings.routes_file))
    providers = build_providers(configs, app.state.http)
    async with Caller(
        app.state.temporal,
        providers,
        workflow_task_queue=settings.workflow_task_queue,
        max_concurrent_calls=settings.max_concurrent_calls,
    ) as caller:
        app.state.caller = caller
        yield


def parse_body(raw: bytes, model: type[BaseModel]) -> tuple[dict[str, Any], Any]:
    """The JSON body and its checked view; a clear 400 for anything malformed."""
    try:
        body = loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"request body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        return body, model.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{where}: {first['msg']}", param=where) from None


def call_id_of(request: Request, key: KeyPolicy) -> str:
    """The update id of an ``Idempotency-Key`` (scoped to the key); empty lets the caller pick
    a fresh one, and keeps no copy of the answer for a retry that cannot come."""
    idem = request.headers.get("idempotency-key")
    if idem is None:
        return ""
    if not 0 < len(idem) <= MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY} characters")
    return "idem-" + hashlib.sha256(f"{key.id}\x00{idem}".encode()).hexdigest()[:40]


def run_for(key: KeyPolicy, tags: list[str], settings: Settings) -> RunInput:
    """A key's task gets its own capped run; a key without a ``task:`` tag is one run."""
    task = task_of(tags)
    return RunInput(
        run_id=f"{key.id}.{task}" if task else key.id,
        budget_micros=key.budget_micros,
        key_id=key.id,
        agent=agent_of(tags),
        task_id=task,
        tags=tags,
        idle_timeout_seconds=settings.run_idle_timeout_seconds,
    )


def failure_to_http(failure: CallFailed) -> GatewayError:
    """Each way a call can fail, as the one HTTP error that says so."""
    detail = failure.details[0] if failure.details else None
    if failure.kind == errors.BUDGET_EXCEEDED and isinstance(detail, dict):
        return http_errors.BudgetExceeded(
            micros_to_usd(int(detail.get("budget_micros", 0))),
            micros_to_usd(int(detail.get("spent_micros", 0))),
            micros_to_usd(int(detail.get("remaining_micros", 0))),
        )
    if failure.kind in (errors.TOO_MANY_CALLS, errors.BUDGET_EXCEEDED):
        return http_errors.RateLimited(failure.message, 1.0)
    if failure.kind == errors.PROVIDER_REJECTED:
        status = int(detail) if isinstance(detail, int) else 400
        return http_errors.ProviderRejected(status, failure.message)
    if failure.kind == errors.ALL_TARGETS_FAILED:
        attempts = detail if isinstance(detail, list) else []
        return http_errors.AllTargetsFailed(attempts)
    if failure.kind == errors.BAD_CALL:
        return BadRequest(failure.message)
    if failure.kind == errors.RUN_NOT_OPEN:
        return GatewayError(failure.message, status=409, code="run_closed")
    return http_errors.Unavailable(failure.message)


def _cost_headers(result: CallResult) -> dict[str, str]:
    headers = {
        "x-runcap-cost-usd": micros_to_usd(result.cost_micros),
        "x-runcap-budget-remaining-usd": micros_to_usd(result.remaining_micros),
        "x-runcap-call-id": result.call_id,
    }
    if result.target is not None:
        headers["x-runcap-target"] = f"{result.target.provider}/{result.target.model}"
    return headers


@dataclass
class CallContext:
    """Everything a route needs from the app, resolved once per request."""

    settings: Settings
    caller: Caller
    router: Router
    limiter: RateLimiter

    @classmethod
    def of(cls, request: Request) -> CallContext:
        state = request.app.state
        return cls(state.settings, state.caller, state.router, state.rate_limiter)


async def handle_call(
    request: Request,
    key: KeyPolicy,
    inbound: WireFormat,
    wire_model: type[BaseModel],
    stream_error: Callable[[GatewayError], bytes],
) -> Response:
    """One model call in ``inbound`` format, non-streaming or streaming."""
    ctx = CallContext.of(request)
    raw = await request.body()
    body, wire = parse_body(raw, wire_model)
    model: str = wire.model
    if not key.allows(model):
        raise ForbiddenModel(f"this key may not use model {model!r}")
    tags = call_tags(body, request.headers.get("x-runcap-tags"), key.tags)
    chain = ctx.router.chain_for(model, tags, inbound)
    max_tokens: int = wire.output_cap()
    ctx.limiter.admit(key.id, rpm=key.rpm, tpm=key.tpm, tokens=len(raw) + max_tokens)
    run = run_for(key, tags, ctx.settings)
    spec = CallSpec(
        body=body,
        inbound=inbound,
        chain=chain,
        max_tokens=max_tokens,
        tags=tags,
        call_id=call_id_of(request, key),
        headers={h: v for h in FORWARDED_HEADERS if (v := request.headers.get(h))},
        requested_model=model,
        input_tokens=len(raw),
    )
    ctx.limiter.acquire(run.run_id, key.max_parallel)
    try:
        if wire.stream:
            call_stream = await ctx.caller.stream(run, spec)
            # The slot is the call's, not the response's: it frees when the call settles, even
            # if the client leaves before the body is ever read.
            call_stream.task.add_done_callback(lambda _: ctx.limiter.release(run.run_id))
            return StreamingResponse(
                _relay(call_stream, stream_error),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-runcap-call-id": call_stream.call_id},
            )
        reply = await ctx.caller.call(run, spec)
    except CallFailed as failure:
        ctx.limiter.release(run.run_id)
        raise failure_to_http(failure) from None
    except BaseException:
        ctx.limiter.release(run.run_id)
        raise
    ctx.limiter.release(run.run_id)
    if reply.body is None:
        raise http_errors.Unavailable("the call settled but its answer was lost; retry it")
    return JSONResponse(reply.body, headers=_cost_headers(reply.result))


async def _relay(
    call_stream: CallStream, stream_error: Callable[[GatewayError], bytes]
) -> AsyncIterator[bytes]:
    """The provider's chunks as they come, then the settled cost as an SSE comment.

    Headers leave before the answer, so a stream reports its cost at its end; a client that
    goes away mid-stream leaves the call to settle on the provider's own usage report.
    """
    async for chunk in call_stream.chunks():
        yield chunk
    try:
        result = await call_stream.result()
    except CallFailed as failure:
        yield stream_error(failure_to_http(failure))
        return
    cost = _cost_headers(result)
    yield (
        f": x-runcap-cost-usd={cost['x-runcap-cost-usd']} "
        f"x-runcap-budget-remaining-usd={cost['x-runcap-budget-remaining-usd']}\n\n"
    ).encode()
