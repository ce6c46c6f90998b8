"""At most ``RUNCAP_MAX_CONCURRENT_CALLS`` model calls in flight in one api instance; past it,
503 with ``Retry-After`` in the caller's format.

Why around the app, by path: a call holds memory (its body, its answer or stream), a provider
connection and its tasks, and a retry waiting on an ``Idempotency-Key`` holds a polling task;
counted from the request's arrival to its response's last byte (a stream until it ends), all of
that is bounded by the cap. Admin, dashboard, metrics and health requests are not counted: they
must answer while calls fill the instance. Why 503 and not 429: this instance is full, not the
key; both SDKs retry a 503 after ``Retry-After``, and another instance may have room.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import Unavailable, error_response

CALL_PATHS = frozenset({"/v1/chat/completions", "/v1/responses", "/v1/messages"})


class CallCapMiddleware:
    """Counts the model calls in flight and refuses those past ``limit``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in CALL_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            full = Unavailable(
                f"this gateway instance is serving its limit of {self.limit} calls at once; "
                "retry shortly",
                code="overloaded",
            )
            await error_response(full, scope["path"])(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
