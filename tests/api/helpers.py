"""Shared bits of the api tests: the admin key, ledger rows, and routes standing in for /v1.

The stand-in routes let the error envelopes be tested without the model-call path: they sit
under ``/v1/...`` (OpenAI envelope) and ``/v1/messages/...`` (Anthropic envelope).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.deps import VirtualKeyDep
from api.errors import BudgetExceeded, RateLimited
from workflows.contracts import Attempt, LedgerRow, Usage

ADMIN_KEY = "admin-test-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

stand_in_router = APIRouter()


class EchoBody(BaseModel):
    model: str
    max_tokens: int


@stand_in_router.post("/v1/test/echo")
@stand_in_router.post("/v1/messages/test/echo")
async def echo(body: EchoBody) -> dict[str, Any]:
    return body.model_dump()


@stand_in_router.post("/v1/test/raw")
@stand_in_router.post("/v1/messages/test/raw")
async def raw(request: Request) -> dict[str, int]:
    return {"bytes": len(await request.body())}


@stand_in_router.get("/v1/test/whoami")
@stand_in_router.get("/v1/messages/test/whoami")
async def whoami(key: VirtualKeyDep) -> dict[str, str]:
    return {"key_id": key.id}


@stand_in_router.get("/v1/test/budget")
@stand_in_router.get("/v1/messages/test/budget")
async def budget() -> None:
    raise BudgetExceeded(
        "budget exhausted: the run has spent $0.999990 of its $1.000000 budget",
        {"budget_usd": "1.000000", "spent_usd": "0.999990", "remaining_usd": "0.000010"},
    )


@stand_in_router.get("/v1/test/limited")
async def limited() -> None:
    raise RateLimited("rate limit: 1 requests per minute for this key", 2.5)


@stand_in_router.get("/v1/test/crash")
@stand_in_router.get("/v1/messages/test/crash")
async def crash() -> None:
    raise RuntimeError("boom with sk-secret-detail")


def row(
    call_id: str,
    *,
    run_id: str = "run1",
    key_id: str = "key_a",
    tags: list[str] | None = None,
    model: str = "fake-small",
    provider: str = "fake",
    cost: int = 1,
    started_at: str = "2025-03-01T12:00:00+00:00",
    status: str = "ok",
    input_tokens: int = 10,
    output_tokens: int = 5,
) -> LedgerRow:
    """A settled-call ledger row with sensible defaults."""
    ok = status == "ok"
    return LedgerRow(
        call_id=call_id,
        run_id=run_id,
        key_id=key_id,
        tags=list(tags or []),
        requested_model=model,
        provider=provider,
        model=model,
        status="ok" if ok else "failed",
        attempts=[Attempt(provider=provider, model=model, ok=ok)],
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        cost_micros=cost,
        reserved_micros=cost * 2,
        started_at=started_at,
        latency_ms=12,
    )
