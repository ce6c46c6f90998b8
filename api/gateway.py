"""The model-call path shared by every wire format: key → policy → tags → route → run → answer.

Far from its caps a call costs no Temporal round trip: it holds against this process's lines
(``caller.lending``). The chain is walked here, with this process's ``Caller``; the answer goes
back to the client as soon as the provider answers, after its ledger row is stored; what it
spent reaches its keepers in a report a few seconds later.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.requests import HTTPConnection

from api import request_costs
from api.agent_identity import AgentCall, agent_call
from api.auth import KeyPolicy
from api.body import loads
from api.errors import BadRequest, ForbiddenModel, GatewayError
from api.failures import failure_to_http, interrupted
from api.idempotency import (
    MAX_KEY_LENGTH,
    Claim,
    IdempotencyStore,
    StoredAnswer,
    purging,
    request_hash,
    wait_for_outcome,
)
from api.limits import CallLimiter, Limits
from api.metrics import GatewayMetrics
from api.output_limits import bounded_output
from api.routing import Router, load_routes
from api.settings import Settings
from api.tags import agent_of, call_tags, session_of, task_of
from caller import Caller, CallFailed, CallSpec, CallStream, WalkPolicy
from providers.pricing import PriceBook
from providers.registry import build_providers
from telemetry.labels import ModelLabels
from telemetry.labels import install as install_model_labels
from workflows.contracts import CallResult, WireFormat
from workflows.guards import fingerprint
from workflows.money import micros_to_usd
from workflows.run_contracts import RunInput
from workflows.run_ids import run_id, subagent_run_id

FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
StreamError = Callable[[GatewayError], bytes]
MoreTags = Callable[[dict[str, Any], Mapping[str, str]], list[str]]
"""Tags a route reads from a call's body and headers (``request:compaction``)."""


@asynccontextmanager
async def gateway_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start this process's caller (settle loop) and routing, with the app's shared clients."""
    settings: Settings = app.state.settings
    configs = settings.provider_configs()
    prices = PriceBook(settings.price_overrides_file, floor=settings.floor_price())
    routes = load_routes(settings.routes_file)
    app.state.router = Router(configs, prices, routes)
    named = [name for route in routes.routes for name in (route.model, *route.chain)]
    install_model_labels(ModelLabels(prices, named))
    stale = timedelta(seconds=settings.run_caller_timeout_seconds + 10)
    app.state.idempotency = IdempotencyStore(app.state.engine, stale_after=stale)
    providers = build_providers(configs, app.state.http)
    policy = WalkPolicy(first_byte_timeout=settings.first_byte_timeout_seconds)
    async with Caller(
        app.state.temporal,
        providers,
        engine=app.state.engine,
        workflow_task_queue=settings.workflow_task_queue,
        policy=policy,
        report_every=settings.report_interval_seconds,
        caller_timeout=settings.run_caller_timeout_seconds,
        line_idle=settings.line_idle_seconds,
        observer=app.state.metrics.observe,
    ) as caller:
        app.state.caller = caller
        every = settings.idempotency_purge_interval_seconds
        async with purging(app.state.idempotency, every=every):
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


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The request's ``Idempotency-Key``, checked; ``None`` when it has none."""
    idem = headers.get("idempotency-key")
    if idem is not None and not 0 < len(idem) <= MAX_KEY_LENGTH:
        raise BadRequest(f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} characters")
    return idem


def run_for(
    key: KeyPolicy, tags: list[str], settings: Settings, agent: AgentCall
) -> tuple[RunInput, list[RunInput]]:
    """The call's run and, for a sub-agent's, its parents' (parent first).

    A run is the key's task (a ``task:`` tag), else its agent's session, else the key itself,
    as the key's ``run_by`` says. A sub-agent's calls are a child run of their parent's run:
    each also needs room at its parents, whose budgets so bound it and show its spend.
    """
    task = task_of(tags) if "task" in key.run_by else ""
    session = (session_of(tags) or agent.session) if "session" in key.run_by else ""
    root = RunInput(
        run_id=run_id(key.id, task=task, session=session),
        budget_micros=key.budget_micros,
        key_id=key.id,
        agent=agent_of(tags),
        task_id=task,
        tags=tags,
        idle_timeout_seconds=settings.run_idle_timeout_seconds,
        caller_timeout_seconds=settings.run_caller_timeout_seconds,
        call_timeout_seconds=settings.run_call_timeout_seconds,
        periods=key.periods(),
        loop_max_repeats=key.loop_max_repeats,
        loop_window_seconds=key.loop_window_seconds,
        max_open_runs=key.max_open_runs,
        own_budget=key.budget_per_run_micros is not None,
        hold_at_cap=key.hold_at_cap,
    )
    if not agent.agent_id:
        return root, []
    parents = [root]
    if agent.parent_agent_id:  # nested: its parent's place is known from its parent's calls
        parents.insert(0, _subagent(key, root, agent.parent_agent_id))
    return _subagent(key, parents[0], agent.agent_id), parents


def _subagent(key: KeyPolicy, parent: RunInput, agent_id: str) -> RunInput:
    share = key.subagent_share_ppm or 0
    return replace(
        parent,
        run_id=subagent_run_id(parent.run_id, agent_id),
        parent_id=parent.run_id,
        parent_share_ppm=share,
        own_budget=parent.own_budget or share > 0,
    )


def cost_headers(result: CallResult) -> dict[str, str]:
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
    limiter: CallLimiter
    idempotency: IdempotencyStore
    metrics: GatewayMetrics

    @classmethod
    def of(cls, request: HTTPConnection) -> CallContext:
        state = request.app.state
        return cls(
            state.settings,
            state.caller,
            state.router,
            state.rate_limiter,
            state.idempotency,
            state.metrics,
        )


@dataclass(frozen=True)
class Arrival:
    """One model call as it arrived: an HTTP request, or a frame of the Responses WebSocket."""

    raw: bytes
    headers: Mapping[str, str]
    path: str
    gone: Callable[[], Awaitable[object]]
    """Returns once the client has left (a non-streaming call is then cancelled)."""
    received_at: float = field(default_factory=time.perf_counter)

    @classmethod
    def of(cls, request: Request, raw: bytes, received_at: float | None = None) -> Arrival:
        """An HTTP request carrying ``raw`` as its body."""
        at = time.perf_counter() if received_at is None else received_at
        return cls(raw, request.headers, request.url.path, partial(_left, request), at)


async def handle_call(
    request: Request,
    key: KeyPolicy,
    inbound: WireFormat,
    wire_model: type[BaseModel],
    stream_error: StreamError,
    more_tags: MoreTags | None = None,
) -> Response:
    """One model call in ``inbound`` format over HTTP, non-streaming or streaming."""
    received_at = time.perf_counter()
    arrival = Arrival.of(request, await request.body(), received_at)
    ctx = CallContext.of(request)
    return await serve_call(ctx, key, arrival, inbound, wire_model, stream_error, more_tags)


async def serve_call(
    ctx: CallContext,
    key: KeyPolicy,
    arrival: Arrival,
    inbound: WireFormat,
    wire_model: type[BaseModel],
    stream_error: StreamError,
    more_tags: MoreTags | None = None,
) -> Response:
    """One model call however it arrived: the one path of budget, billing and streaming."""
    received_at, raw = arrival.received_at, arrival.raw
    body, wire = parse_body(raw, wire_model)
    model: str = wire.model
    if not key.allows(model):
        raise ForbiddenModel(f"this key may not use model {model!r}")
    agent = agent_call(arrival.headers)
    tags = call_tags(body, arrival.headers.get("x-runcap-tags"), key.tags, agent.tags())
    if more_tags is not None:
        tags += [t for t in more_tags(body, arrival.headers) if t not in tags]
    route = ctx.router.route_for(model, tags, inbound)
    extras = request_costs.inspect(body, inbound)  # tools and media the bytes do not show
    chain = request_costs.priced(route.chain, extras, inbound)
    max_tokens = bounded_output(
        wire.asked_output(), wire.output_cap(), route.chain, ctx.settings.max_output_tokens
    )
    idem = idempotency_key(arrival.headers)
    claim: Claim | None = None
    if idem is not None:
        claim = await _claim(ctx, key, idem, request_hash(arrival.path, raw))
        if claim.kind != "ours":
            return _replay(claim)
    run, parents = run_for(key, tags, ctx.settings, agent)
    spec = CallSpec(
        body=body,
        inbound=inbound,
        chain=chain,
        max_tokens=max_tokens,
        tags=tags,
        call_id=claim.call_id if claim else "",
        headers={h: v for h in FORWARDED_HEADERS if (v := arrival.headers.get(h))},
        requested_model=model,
        input_tokens=len(raw) + extras.input_tokens(chain),
        first_byte_timeout=route.first_byte_timeout,
        fingerprint=fingerprint(body) if key.loop_max_repeats else "",
        received_at=received_at,
    )
    saver = _Saver(ctx.idempotency, key.id, idem) if idem is not None else None
    try:
        limits = Limits(rpm=key.rpm, tpm=key.tpm, max_parallel=key.max_parallel)
        permit = await ctx.limiter.take(key.id, limits, tokens=len(raw) + max_tokens)
    except GatewayError as refused:
        ctx.metrics.refused(refused.code)
        if saver:
            await saver.forget()
        raise
    streaming = False
    try:
        if wire.stream:
            call_stream = await ctx.caller.stream(run, spec, parents)
            # The slot is the call's, not the response's: it frees when the call ends, even if
            # the client leaves before the body is ever read.
            assert call_stream.task is not None
            call_stream.task.add_done_callback(lambda _: permit.release())
            streaming = True
            return StreamingResponse(
                _relay(call_stream, stream_error, saver),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-runcap-call-id": call_stream.call_id},
            )
        reply = await _until_gone(arrival.gone, ctx.caller.call(run, spec, parents))
    except CallFailed as failure:
        error = failure_to_http(failure.failure, chain)
        ctx.metrics.refused(error.code)
        if saver:
            await saver.forget()
        raise error from None
    finally:
        if not streaming:  # also a stream that failed before its first byte
            await permit.end()
    if reply.body is None:  # the run says this call id already settled: a replay
        raise interrupted(reply.result)
    headers = cost_headers(reply.result)
    if saver:
        await saver.save(
            StoredAnswer(200, "application/json", json.dumps(reply.body).encode(), headers)
        )
    return JSONResponse(reply.body, headers=headers)


async def _claim(ctx: CallContext, key: KeyPolicy, idem: str, req_hash: str) -> Claim:
    store = ctx.idempotency
    owner = ctx.caller.caller_id
    claim = await asyncio.to_thread(store.claim, key.id, idem, req_hash, owner)
    if claim.kind == "pending":
        # A wait holds a request and a parallel slot of the key like a call (it spends no
        # tokens), and is bounded: retries cannot pile up in the api.
        limits = Limits(rpm=key.rpm, tpm=key.tpm, max_parallel=key.max_parallel)
        try:
            permit = await ctx.limiter.take(key.id, limits, tokens=0)
        except GatewayError as refused:
            ctx.metrics.refused(refused.code)
            raise
        try:
            within = ctx.settings.idempotency_wait_seconds
            claim = await wait_for_outcome(store, key.id, idem, req_hash, owner, within=within)
        finally:
            await permit.end()
    return claim


def _replay(claim: Claim) -> Response:
    """The answer of a key's first request, or why there is none."""
    if claim.kind == "mismatch":
        raise GatewayError(
            "this Idempotency-Key was already used for a different request; use a new key",
            status=409,
            code="idempotency_key_reused",
            headers={"x-should-retry": "false"},
        )
    if claim.kind == "stored" and claim.answer is not None:
        answer = claim.answer
        return Response(
            answer.body,
            status_code=answer.status_code,
            media_type=answer.content_type,
            headers={**answer.headers, "x-runcap-replayed": "true"},
        )
    if claim.ledger_status in ("unknown", "cancelled"):
        raise interrupted(None)
    raise GatewayError(
        "the first request with this Idempotency-Key is still running; retry shortly",
        status=409,
        code="idempotency_in_progress",
        headers={"Retry-After": "1"},
    )


class _Saver:
    """Stores a claimed request's answer, or forgets the claim when it spent nothing."""

    def __init__(self, store: IdempotencyStore, key_id: str, idem: str) -> None:
        self.store, self.key_id, self.idem = store, key_id, idem

    async def save(self, answer: StoredAnswer) -> None:
        await asyncio.to_thread(self.store.complete, self.key_id, self.idem, answer)

    async def forget(self) -> None:
        await asyncio.to_thread(self.store.forget, self.key_id, self.idem)


async def _left(request: Request) -> None:
    """Returns once an HTTP client has disconnected."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _until_gone(gone: Callable[[], Awaitable[object]], work: Any) -> Any:
    """Run ``work``; if the client leaves first, cancel it (the provider request with it)."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        await gone()
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await task
    finally:
        watcher.cancel()


async def _relay(
    call_stream: CallStream, stream_error: StreamError, saver: _Saver | None
) -> AsyncIterator[bytes]:
    """The provider's chunks as they come, its closing chunks once the ledger has the call, then
    the settled cost as an SSE comment.

    A client that goes away mid-stream cancels the upstream request; the call is billed what
    was received. A provider stream that breaks ends with an error event, not silently.
    """
    kept: list[bytes] = []
    try:
        async for chunk in call_stream.chunks():
            if saver:
                kept.append(chunk)
            yield chunk
        try:
            end = await call_stream.end()
        except CallFailed as failure:
            yield stream_error(failure_to_http(failure.failure, []))
            return
        closing = list(end.tail)  # for a broken stream, its error event in the caller's format
        cost = cost_headers(end.result)
        closing.append(
            (
                f": x-runcap-cost-usd={cost['x-runcap-cost-usd']} "
                f"x-runcap-budget-remaining-usd={cost['x-runcap-budget-remaining-usd']}\n\n"
            ).encode()
        )
        if saver:
            body = b"".join([*kept, *closing])
            await saver.save(StoredAnswer(200, "text/event-stream", body, cost))
        for chunk in closing:
            yield chunk
    finally:
        call_stream.abort()
