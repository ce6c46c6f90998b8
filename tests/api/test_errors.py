"""Error envelopes: OpenAI's on /v1, Anthropic's on /v1/messages, a plain one on /admin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import ValidationError

from api.errors import (
    AllTargetsFailed,
    BudgetExceeded,
    ProviderRejected,
    RateLimited,
    Unavailable,
    anthropic_body,
    envelope_for_path,
    openai_body,
)
from api.settings import Settings
from tests.api.helpers import ADMIN

OPENAI, ANTHROPIC = "/v1/test", "/v1/messages/test"
BIG = 64 * 1024 + 1


def assert_openai(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    error: dict[str, object] = response.json()["error"]
    assert {"message", "type", "param", "code"} <= error.keys()
    assert error["code"] == code
    return error


def assert_anthropic(response: httpx.Response, status: int, kind: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == kind
    error: dict[str, object] = body["error"]
    assert error["message"]
    return error


async def test_malformed_json_is_400_in_both_formats(client: httpx.AsyncClient) -> None:
    """A body that is not JSON is a 400 invalid request, never a 422 or 500."""
    headers = {"content-type": "application/json"}
    bad = b'{"model": "x", '
    error = assert_openai(
        await client.post(f"{OPENAI}/echo", content=bad, headers=headers), 400, "invalid_json"
    )
    assert "malformed JSON" in str(error["message"])
    assert_anthropic(
        await client.post(f"{ANTHROPIC}/echo", content=bad, headers=headers),
        400,
        "invalid_request_error",
    )


async def test_wrong_types_are_400_naming_the_field(client: httpx.AsyncClient) -> None:
    """A wrongly typed field is a 400 whose message and param name the field."""
    body = {"model": "x", "max_tokens": "many"}
    error = assert_openai(await client.post(f"{OPENAI}/echo", json=body), 400, "invalid_request")
    assert error["param"] == "max_tokens" and "max_tokens" in str(error["message"])
    assert_anthropic(
        await client.post(f"{ANTHROPIC}/echo", json=body), 400, "invalid_request_error"
    )


async def test_declared_huge_body_is_413(client: httpx.AsyncClient) -> None:
    """A Content-Length over the limit is refused with 413 before the body is read."""
    payload = b"x" * BIG
    assert_openai(await client.post(f"{OPENAI}/raw", content=payload), 413, "request_too_large")
    assert_anthropic(
        await client.post(f"{ANTHROPIC}/raw", content=payload), 413, "request_too_large"
    )


async def test_streamed_huge_body_is_413(client: httpx.AsyncClient) -> None:
    """A chunked body without Content-Length is counted and refused with 413 past the limit."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * (BIG // 8)

    assert_openai(await client.post(f"{OPENAI}/raw", content=chunks()), 413, "request_too_large")
    assert_anthropic(
        await client.post(f"{ANTHROPIC}/echo", content=chunks()), 413, "request_too_large"
    )
    small = await client.post(f"{OPENAI}/raw", content=b"x" * 100)
    assert small.json() == {"bytes": 100}


async def test_unknown_routes_are_404_in_the_right_envelope(client: httpx.AsyncClient) -> None:
    """Unknown paths answer 404 in the envelope of their prefix."""
    assert_openai(await client.get("/v1/nope"), 404, "not_found")
    assert_anthropic(await client.post("/v1/messages/nope"), 404, "not_found_error")
    admin = await client.get("/admin/nope", headers=ADMIN)
    assert admin.status_code == 404 and admin.json()["error"]["code"] == "not_found"


async def test_missing_auth_is_401_in_both_formats(client: httpx.AsyncClient) -> None:
    """A /v1 call without a key is 401 in the caller's envelope."""
    assert_openai(await client.get(f"{OPENAI}/whoami"), 401, "missing_api_key")
    assert_anthropic(await client.get(f"{ANTHROPIC}/whoami"), 401, "authentication_error")
    wrong = {"x-api-key": "rc-not-a-key"}
    assert_openai(await client.get(f"{OPENAI}/whoami", headers=wrong), 401, "invalid_api_key")


async def test_budget_exceeded_carries_the_figures(client: httpx.AsyncClient) -> None:
    """budget_exceeded is a 429 whose message says the budget is exhausted, with USD figures."""
    error = assert_openai(await client.get(f"{OPENAI}/budget"), 429, "budget_exceeded")
    assert "budget exhausted" in str(error["message"])
    assert error["remaining_usd"] == "0.000010" and error["budget_usd"] == "1.000000"
    anthropic = assert_anthropic(await client.get(f"{ANTHROPIC}/budget"), 429, "rate_limit_error")
    assert anthropic["spent_usd"] == "0.999990"


async def test_rate_limited_sets_retry_after(client: httpx.AsyncClient) -> None:
    """rate_limited is a 429 with a whole-second Retry-After header, rounded up."""
    response = await client.get(f"{OPENAI}/limited")
    assert_openai(response, 429, "rate_limited")
    assert response.headers["retry-after"] == "3"


@pytest.mark.parametrize("prefix", [OPENAI, ANTHROPIC])
async def test_unexpected_errors_are_generic_500_and_server_keeps_serving(
    client: httpx.AsyncClient, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug answers a generic 500 without details, is logged, and the next request works."""
    response = await client.get(f"{prefix}/crash")
    assert response.status_code == 500
    assert "boom" not in response.text and "Traceback" not in response.text
    assert "unhandled error" in caplog.text
    assert (await client.get("/healthz")).json() == {"status": "ok"}


def test_envelope_choice_by_path() -> None:
    """/v1/messages* is Anthropic's, other /v1 OpenAI's, everything else the admin envelope."""
    assert envelope_for_path("/v1/messages") == "anthropic"
    assert envelope_for_path("/v1/messages/count_tokens") == "anthropic"
    assert envelope_for_path("/v1/messagesx") == "openai"
    assert envelope_for_path("/v1/chat/completions") == "openai"
    assert envelope_for_path("/admin/keys") == "admin"


def test_provider_and_chain_errors_map_to_their_status() -> None:
    """A provider's 4xx keeps its status; an exhausted chain is a 502 listing the attempts."""
    rejected = ProviderRejected(422, "messages: field required")
    assert rejected.status == 422
    assert openai_body(rejected)["error"]["message"] == "messages: field required"
    failed = AllTargetsFailed([{"provider": "fake", "model": "m", "error": "529"}])
    assert failed.status == 502
    assert anthropic_body(failed)["error"]["attempts"][0]["error"] == "529"
    assert anthropic_body(failed)["error"]["type"] == "api_error"
    assert openai_body(BudgetExceeded("budget exhausted"))["error"]["type"] == "insufficient_quota"
    assert RateLimited("x", 0.1).headers == {"Retry-After": "1"}


def test_no_retry_after_is_over_60_seconds() -> None:
    """Claude Code gives up on a Retry-After over 60 s: a longer wait is sent as 60, and a
    retry on an ``Idempotency-Key`` is never held longer than 60 s."""
    assert RateLimited("x", 59.2).headers == {"Retry-After": "60"}
    assert RateLimited("x", 3600).headers == {"Retry-After": "60"}
    assert Unavailable("x", retry_after_seconds=600).headers["Retry-After"] == "60"
    assert Unavailable("x").headers["Retry-After"] == "1"
    with pytest.raises(ValidationError, match="idempotency_wait_seconds"):
        Settings.model_validate({"idempotency_wait_seconds": 61})
