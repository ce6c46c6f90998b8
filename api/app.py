"""The api app factory: lifespan (database, Temporal client, HTTP client), routers (the model-call
endpoints, the admin api, the dashboard at ``/ui``), error handling.

Why a factory with a lifespan: nothing connects at import time, each process owns exactly one
engine, one Temporal client and one ``httpx.AsyncClient``, and tests build apps around their own.

The model-call routers (chat completions, Responses, Anthropic messages) are plain imports, so
readers and tools can follow them. ``api.gateway.gateway_lifespan(app)`` is entered after the
shared clients exist (it starts the caller-side worker); ``app.state.extra_lifespans`` holds any
more such callables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from api import (
    alerts,
    calls,
    keys,
    metrics,
    own_runs,
    routes_anthropic,
    routes_openai,
    routes_responses,
    routes_responses_ws,
    run_updates,
    runs,
    spend,
)
from api.auth import KeyCache
from api.concurrency import CallCapMiddleware
from api.errors import BodyTooLarge, GatewayError, error_response, install_error_handlers
from api.gateway import gateway_lifespan
from api.limits import shared_limiter
from api.openapi import install_openapi
from api.revocations import RevocationWatch
from api.settings import Settings, get_settings
from api.ui.guard import install_ui_errors, make_signer
from api.ui.router import STATIC_PATH, static_files
from api.ui.router import router as ui_router
from db.engine import engine_from
from db.migrate import check_schema
from providers.registry import make_http_client
from telemetry.setup import temporal_interceptors
from workflows.converter import DATA_CONVERTER

log = logging.getLogger(__name__)
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


async def _send_error(scope: Scope, receive: Receive, send: Send, error: GatewayError) -> None:
    await error_response(error, scope.get("path", ""))(scope, receive, send)


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413: by Content-Length, and by counting chunks."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = BodyTooLarge(f"request body is larger than {self.max_bytes} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                bad = GatewayError("invalid Content-Length", status=400, code="invalid_request")
                await _send_error(scope, receive, send, bad)
                return
            if int(declared) > self.max_bytes:
                await _send_error(scope, receive, send, too_large)
                return
        seen = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise too_large
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's own answer to the aborted read is replaced by the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _send_error(scope, receive, send, too_large)


class CatchAllMiddleware:
    """The last resort: log an unexpected error server-side, answer a generic 500, no trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            # Headers and bodies are never logged: they carry keys and prompts.
            # The path as a repr: a client's %0a must not start a line of its own in the log.
            log.error(
                "unhandled error on %s %r", scope.get("method"), scope.get("path"), exc_info=exc
            )
            if not started:
                error = GatewayError("internal error; see the gateway's log", code="internal_error")
                await _send_error(scope, receive, send, error)


async def connect_temporal(settings: Settings) -> Client:
    """Connect to Temporal (``settings/temporal.py``) or fail startup saying what to fix."""
    return await settings.temporal().connect(
        within=settings.temporal_connect_timeout_seconds,
        data_converter=DATA_CONVERTER,
        interceptors=temporal_interceptors(),
    )


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    temporal_client: Client | None = None,
) -> FastAPI:
    """The api. ``engine``/``temporal_client`` may be injected (tests); the caller owns them."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        db = engine or engine_from(settings)
        timeout = httpx.Timeout(settings.http_timeout_seconds, connect=5.0)
        limits = httpx.Limits(
            max_connections=settings.http_max_connections,
            max_keepalive_connections=settings.http_max_connections,
        )
        async with AsyncExitStack() as stack:
            if own_engine:
                stack.callback(db.dispose)
            # Migrations run before the api (``python -m db upgrade``); it only checks them.
            await asyncio.to_thread(check_schema, db)
            client = temporal_client or await connect_temporal(settings)
            http = await stack.enter_async_context(make_http_client(timeout=timeout, limits=limits))
            app.state.engine = db
            app.state.temporal = client
            app.state.http = http
            app.state.ui_signer = make_signer(settings, db)
            cache = KeyCache(
                db,
                ttl=settings.key_cache_ttl_seconds,
                unknown_ttl=settings.unknown_key_cache_seconds,
                unknown_size=settings.unknown_key_cache_size,
            )
            app.state.key_cache = cache
            every = settings.revocation_poll_seconds
            await stack.enter_async_context(RevocationWatch(db, cache, every=every))
            app.state.rate_limiter = await stack.enter_async_context(shared_limiter(db, settings))
            hooks: list[Lifespan] = [gateway_lifespan, *app.state.extra_lifespans]
            for hook in hooks:
                await stack.enter_async_context(hook(app))
            yield

    # FastAPI's own telemetry makes the HTTP server span (joining an incoming ``traceparent``)
    # when an SDK is installed; its per-dependency and serialization spans are noise next to
    # the call's span, and cost time on every call.
    app = FastAPI(
        title="runcap",
        version="0.1.0",
        lifespan=lifespan,
        telemetry={"operation_spans": False},
    )
    app.state.settings = settings
    app.state.extra_lifespans = []
    app.state.metrics = metrics.GatewayMetrics()
    install_error_handlers(app)
    install_openapi(app)
    install_ui_errors(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(CallCapMiddleware, limit=settings.max_concurrent_calls)
    app.add_middleware(CatchAllMiddleware)
    app.include_router(keys.router)
    app.include_router(spend.router)
    app.include_router(routes_openai.router)
    app.include_router(routes_responses.router)
    app.include_router(routes_responses_ws.router)
    app.include_router(routes_anthropic.router)
    app.include_router(runs.router)
    app.include_router(run_updates.router)
    app.include_router(own_runs.router)
    app.include_router(calls.router)
    app.include_router(alerts.router)
    app.include_router(metrics.router)
    app.include_router(ui_router)
    app.mount(STATIC_PATH, static_files(), name="ui-static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: the process is up and serving."""
        return {"status": "ok"}

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    @app.api_route("/api/hello", methods=["GET", "HEAD"], include_in_schema=False)
    async def root() -> dict[str, str]:
        """What agents probe before their first call: Claude Code sends ``HEAD /``, and
        ``HEAD /api/hello`` (Anthropic's reachability probe, which warms its connection) to an
        ``ANTHROPIC_BASE_URL``. A 200 says the gateway is up; neither needs a key."""
        return {"service": "runcap", "dashboard": "/ui"}

    return app
