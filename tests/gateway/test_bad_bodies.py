"""Bodies Python's JSON parser accepts but runcap must refuse: deep nesting, lone surrogates,
NaN and infinities. Each is a 400 in the caller's envelope before any provider attempt."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.gateway.conftest import ADMIN, Gateway
from tests.gateway.test_sdks import ledger_total

DEEP = b"[" * 100_000 + b"]" * 100_000
MESSAGES = '[{"role": "user", "content": "%s"}]'

# (case, path, raw body, words in the message)
BAD: list[tuple[str, str, bytes, str]] = [
    ("100,000-deep nesting", "/v1/chat/completions", DEEP, "nested deeper"),
    ("100,000-deep nesting", "/v1/messages", DEEP, "nested deeper"),
    (
        "deep inside a message",
        "/v1/chat/completions",
        b'{"model": "fake-small", "messages": [{"role": "user", "content": '
        + b"[" * 500
        + b"]" * 500
        + b"}]}",
        "nested deeper",
    ),
    (
        "lone surrogate",
        "/v1/chat/completions",
        b'{"model": "fake-small", "messages": ' + (MESSAGES % "\\ud800").encode() + b"}",
        "surrogate",
    ),
    (
        "lone surrogate",
        "/v1/messages",
        b'{"model": "fake-small", "max_tokens": 50, "messages": '
        + (MESSAGES % "fix \\udfff this").encode()
        + b"}",
        "surrogate",
    ),
    (
        "NaN",
        "/v1/chat/completions",
        b'{"model": "fake-small", "temperature": NaN, "messages": '
        + (MESSAGES % "hi").encode()
        + b"}",
        "NaN",
    ),
    (
        "Infinity",
        "/v1/messages",
        b'{"model": "fake-small", "max_tokens": 50, "top_p": -Infinity, "messages": '
        + (MESSAGES % "hi").encode()
        + b"}",
        "Infinity",
    ),
    (
        "1e999",
        "/v1/chat/completions",
        b'{"model": "fake-small", "temperature": 1e999, "messages": '
        + (MESSAGES % "hi").encode()
        + b"}",
        "out of range",
    ),
    ("invalid UTF-8", "/v1/messages/count_tokens", b'{"model": "\xff\xfe"}', "UTF-8"),
]


@pytest.mark.parametrize(
    ("case", "path", "raw", "words"), BAD, ids=[f"{c}:{p}" for c, p, _, _ in BAD]
)
async def test_unsafe_json_is_a_400_before_any_provider_attempt(
    gateway: Gateway, case: str, path: str, raw: bytes, words: str
) -> None:
    """Refused up front in the caller's format: no provider request, no ledger row, no failed
    call counted; the gateway goes on serving."""
    key = await gateway.create_key()
    before = len(await gateway.fake.requests())
    headers = {"Authorization": f"Bearer {key['key']}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
        response = await http.post(path, content=raw, headers=headers)
        assert response.status_code == 400, response.text
        body: dict[str, Any] = response.json()
        if path.startswith("/v1/messages"):
            assert body["type"] == "error"
            assert body["error"]["type"] == "invalid_request_error"
        else:
            assert body["error"]["type"] == "invalid_request_error"
        assert words.lower() in body["error"]["message"].lower(), body
        assert "Traceback" not in response.text
        assert len(await gateway.fake.requests()) == before
        assert ledger_total(gateway, key["id"]) == (0, 0)
        good = {"model": "fake-small", "messages": [{"role": "user", "content": "hi 😀"}]}
        assert (await http.post("/v1/chat/completions", json=good, headers=headers)).is_success


async def test_admin_bodies_follow_the_same_rules(gateway: Gateway) -> None:
    """The admin api's JSON bodies are parsed by the same rules: 400s in its own envelope."""
    for raw, words in (
        (DEEP, "nested deeper"),
        (b'{"name": "a\\ud800", "budget_usd": 1}', "surrogate"),
        (b'{"name": "a", "budget_usd": NaN}', "NaN"),
    ):
        response = await gateway.admin.post(
            "/admin/keys", content=raw, headers={**ADMIN, "content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_json"
        assert words.lower() in error["message"].lower()
