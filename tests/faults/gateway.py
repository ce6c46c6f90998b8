"""A client's view of the topology: keys through the admin api, calls through any api
instance, and what each call's client saw."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import Engine
from temporalio.client import Client

from prodcheck.stack import Stack
from tests.faults.money import ledger_rows

MESSAGES = [{"role": "user", "content": "make the failing test pass"}]
RETRYABLE = {408, 409, 429, 500, 502, 503, 504}
"""What the OpenAI and Anthropic SDKs retry on their own."""
DROPPED = 599
"""Our mark for a connection that broke before an answer (the SDKs retry those too)."""
NO_ANSWER = 598
"""Our mark for a call still unanswered after ``CALL_SECONDS``: a failure, never accepted."""
CALL_SECONDS = 60.0
"""How long a client waits for one call; the fake provider answers in well under a second."""


@dataclass(frozen=True)
class Key:
    id: str
    secret: str


@dataclass
class Answer:
    """What one call's client saw."""

    status: int
    headers: dict[str, str]
    body: Any
    api: int

    @property
    def ok(self) -> bool:
        """Answered in full (a stream that ended with an error event was not)."""
        return self.status == 200 and not self.error

    @property
    def call_id(self) -> str:
        return self.headers.get("x-runcap-call-id", "")

    @property
    def cost_micros(self) -> int | None:
        """What the client was told it cost (a stream's headers go out before the cost is known)."""
        told = self.headers.get("x-runcap-cost-usd")
        return None if told is None else int(Decimal(told) * 1_000_000)

    @property
    def budget_exceeded(self) -> bool:
        return self.status == 429 and self.error.get("code") == "budget_exceeded"

    @property
    def error(self) -> dict[str, Any]:
        inner: dict[str, Any] = self.body.get("error", {}) if isinstance(self.body, dict) else {}
        return inner

    def assert_answered_or_retryable(self) -> None:
        """An answer; a clear refusal of an unaffordable call; or an error in OpenAI's
        envelope that its SDK retries, with Retry-After where it applies."""
        if self.ok or self.budget_exceeded or self.status == DROPPED:
            return
        if self.status == 200:  # a stream that broke after bytes went out: it says so
            assert {"message", "type"} <= set(self.error), self.body
            return
        assert self.status in RETRYABLE, (self.status, self.body)
        assert {"message", "type", "code"} <= set(self.error), self.body
        if self.status in (429, 503):
            assert "retry-after" in self.headers, (self.status, self.headers)


@dataclass
class Gateway:
    """The topology, seen from outside: admin calls, model calls, the ledger, Temporal."""

    stack: Stack
    temporal: Client
    http: httpx.AsyncClient
    engine: Engine
    answers: list[Answer] = field(default_factory=list)

    @classmethod
    @asynccontextmanager
    async def open(cls, stack: Stack, temporal: Client) -> AsyncIterator[Gateway]:
        engine = stack.ledger_engine()
        limits = httpx.Limits(max_connections=500)
        try:
            async with httpx.AsyncClient(timeout=CALL_SECONDS, limits=limits) as http:
                yield cls(stack, temporal, http, engine)
        finally:
            engine.dispose()

    def url(self, api: int = 0) -> str:
        return self.stack.api_urls[api]

    async def create_key(self, budget_usd: str, **fields: Any) -> Key:
        """A virtual key whose every run may spend ``budget_usd``."""
        body = {"name": "faults", "budget_usd": budget_usd, **fields}
        headers = {"Authorization": f"Bearer {self.stack.admin_key}"}
        response = await self.http.post(f"{self.url()}/admin/keys", json=body, headers=headers)
        assert response.status_code == 201, response.text
        created = response.json()
        return Key(created["id"], created["key"])

    async def chat(
        self,
        key: Key,
        task: str,
        *,
        api: int = 0,
        max_tokens: int = 50,
        model: str = "fake-small",
        headers: dict[str, str] | None = None,
        streaming: asyncio.Event | None = None,
        **extra: Any,
    ) -> Answer:
        """One chat completion on ``key``'s run for ``task``; what the client saw. With
        ``stream=True`` the body is the text streamed, or the error event that ended it, and
        ``streaming`` is set once text has reached the client."""
        body = {
            "model": model,
            "messages": MESSAGES,
            "max_tokens": max_tokens,
            "metadata": {"tags": [f"task:{task}"]},
            **extra,
        }
        sent = {"Authorization": f"Bearer {key.secret}", **(headers or {})}
        url = f"{self.url(api)}/v1/chat/completions"
        try:
            async with self.http.stream("POST", url, json=body, headers=sent) as response:
                if body.get("stream") and response.status_code == 200:
                    parsed = await _read_stream(response, streaming or asyncio.Event())
                else:
                    raw = await response.aread()
                    try:
                        parsed = json.loads(raw)
                    except ValueError:
                        parsed = raw.decode(errors="replace")
        except httpx.TimeoutException:
            answer = Answer(NO_ANSWER, {}, {"timeout": f"no answer in {CALL_SECONDS:.0f}s"}, api)
        except httpx.TransportError as error:  # a dropped connection is what a client sees
            answer = Answer(DROPPED, {}, {"transport_error": repr(error)}, api)
        else:
            answer = Answer(response.status_code, dict(response.headers), parsed, api)
        self.answers.append(answer)
        return answer

    async def reservation_micros(self) -> int:
        """What one call of ``chat``'s shape reserves, measured on a run of its own."""
        key = await self.create_key("1")
        task = f"probe-{uuid.uuid4().hex[:8]}"
        answer = await self.chat(key, task)
        assert answer.ok, answer.body
        rows = await ledger_rows(self, f"{key.id}.{task}", calls=1)
        return rows[0].reserved_micros


async def _read_stream(response: httpx.Response, streaming: asyncio.Event) -> Any:
    """A chat completion stream's text, or its error event (a stream that failed loudly);
    one that just stops is a dropped connection to the client."""
    text = ""
    async for line in response.aiter_lines():
        if line == "data: [DONE]":
            return {"text": text}
        if not line.startswith("data: "):
            continue
        event = json.loads(line[6:])
        if "error" in event:
            return {"text": text, "error": event["error"]}
        for choice in event.get("choices", []):
            text += choice.get("delta", {}).get("content") or ""
        if text:
            streaming.set()
    raise httpx.RemoteProtocolError(f"the stream ended without [DONE] after {len(text)} chars")
