"""An alert webhook receiver on 127.0.0.1 that behaves as a careful real one would.

It checks each request's signature with ``verify_signature`` (and refuses a bad one with 400),
answers the statuses a test scripts (then 204), may hold requests until a test lets them go,
and keeps every request it saw and the event ids it accepted, in order: a repeat shows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from activities.alert_signature import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature
from tests.serving import serving


@dataclass
class Seen:
    """One request as it arrived, and what the receiver answered."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    secret: str | None = None
    """Requests must be signed with it; None accepts unsigned requests."""
    statuses: list[int] = field(default_factory=list)
    """Answered in order, one per request; 204 once they run out."""
    retry_after: str | None = None
    """Sent as ``Retry-After`` with every answer that is not 2xx."""
    gate: asyncio.Event | None = None
    """When set, requests wait until it is set before they are answered."""
    seen: list[Seen] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    """Event ids answered 2xx, one entry per acceptance."""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    """The JSON body of each accepted request."""
    url: str = ""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if self.gate is not None:
            await self.gate.wait()
        signature = headers.get(SIGNATURE_HEADER.lower(), "")
        verified = self.secret is None or verify_signature(self.secret, signature, body)
        status = 400 if not verified else (self.statuses.pop(0) if self.statuses else 204)
        self.seen.append(Seen(headers, body, verified, status))
        if 200 <= status < 300:
            self.accepted.append(headers.get(EVENT_ID_HEADER.lower(), ""))
            self.bodies.append(json.loads(body))
        extra = (
            []
            if self.retry_after is None or status < 300
            else [(b"retry-after", self.retry_after.encode())]
        )
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": b""})


@asynccontextmanager
async def receiving(receiver: WebhookReceiver) -> AsyncIterator[WebhookReceiver]:
    """``receiver`` listening on 127.0.0.1 (its ``url`` set) until the block ends."""
    async with serving(receiver) as base:
        receiver.url = f"{base}/hook"
        yield receiver
