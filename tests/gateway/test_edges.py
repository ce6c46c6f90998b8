"""The gateway's edges: bad input on the real endpoints, and a client that leaves mid-stream."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from caller import run_handle
from tests.gateway.conftest import Gateway
from tests.gateway.test_sdks import MESSAGES, ledger_total
from workflows.agent_run import AgentRun

GOOD = {"model": "fake-small", "messages": MESSAGES}


def bearer(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


BAD_OPENAI: list[tuple[str, Any, dict[str, str], int, str]] = [
    ("malformed json", b'{"model": "fake-small", "messages": [', {}, 400, "JSON"),
    ("not an object", b"[1, 2]", {}, 400, "object"),
    ("wrong type", {**GOOD, "max_tokens": "lots"}, {}, 400, "max_tokens"),
    ("negative max_tokens", {**GOOD, "max_tokens": -1}, {}, 400, "max_tokens"),
    ("no messages", {"model": "fake-small"}, {}, 400, "messages"),
    ("unknown model", {**GOOD, "model": "no-such-model"}, {}, 400, "no-such-model"),
    ("bad tag", {**GOOD, "metadata": {"tags": ["step:edit; DROP TABLE"]}}, {}, 400, "tag"),
    (
        "too many tags",
        {**GOOD, "metadata": {"tags": [f"t:{i}" for i in range(40)]}},
        {},
        400,
        "tag",
    ),
    ("bad tag header", GOOD, {"x-runcap-tags": "a b"}, 400, "tag"),
    ("huge body", {**GOOD, "pad": "x" * (3 * 1024 * 1024)}, {}, 413, "larger"),
]


@pytest.mark.parametrize(("case", "body", "headers", "status", "words"), BAD_OPENAI)
async def test_bad_openai_requests_get_a_clear_4xx_and_record_nothing(
    gateway: Gateway,
    case: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    words: str,
) -> None:
    """Each bad request: the right status, OpenAI's envelope, no ledger row; serving goes on."""
    key = await gateway.create_key()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        sent = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = await http.post(
            "/v1/chat/completions",
            headers={**bearer(key), "content-type": "application/json", **headers},
            **sent,
        )
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert words.lower() in error["message"].lower()
        assert "Traceback" not in response.text
        assert ledger_total(gateway, key["id"]) == (0, 0)
        ok = await http.post("/v1/chat/completions", headers=bearer(key), json=GOOD)
        assert ok.status_code == 200


async def test_auth_and_policy_errors_in_each_format(gateway: Gateway) -> None:
    """Missing key 401, revoked-style unknown key 401, model outside the key's list 403."""
    key = await gateway.create_key(models=["fake-small"])
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        missing = await http.post("/v1/chat/completions", json=GOOD)
        assert missing.status_code == 401 and missing.json()["error"]["message"]
        unknown = await http.post(
            "/v1/messages",
            headers={"x-api-key": "rc-not-a-key"},
            json={**GOOD, "max_tokens": 10},
        )
        assert unknown.status_code == 401
        assert unknown.json()["error"]["type"] == "authentication_error"
        denied = await http.post(
            "/v1/messages",
            headers={"x-api-key": key["key"]},
            json={**GOOD, "model": "fake-large", "max_tokens": 10},
        )
        assert denied.status_code == 403
        assert denied.json()["type"] == "error"
        no_cap = await http.post("/v1/messages", headers={"x-api-key": key["key"]}, json=GOOD)
        assert no_cap.status_code == 400 and "max_tokens" in no_cap.json()["error"]["message"]


async def test_client_leaving_mid_stream_is_settled_on_provider_usage(gateway: Gateway) -> None:
    """A client that drops a stream after its first chunk: the call still settles, nothing held."""
    key = await gateway.create_key()
    await gateway.fake.script("fake-small", chunk_delay_ms=50, reply="word " * 40)
    try:
        async with (
            httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http,
            http.stream(
                "POST",
                "/v1/chat/completions",
                headers=bearer(key),
                json={**GOOD, "stream": True},
            ) as response,
        ):
            assert response.status_code == 200
            async for _ in response.aiter_bytes():
                break  # the agent goes away
        handle = run_handle(gateway.temporal, key["id"])
        for _ in range(100):
            spend = await handle.query(AgentRun.spend)
            if spend.calls == 1 and spend.reserved_micros == 0:
                break
            await asyncio.sleep(0.1)
        assert spend.calls == 1 and spend.reserved_micros == 0
        assert spend.spent_micros > 0
    finally:
        await gateway.fake.reset()


async def test_count_tokens_and_models(gateway: Gateway) -> None:
    """Claude Code's token count answers an estimate; the model list is the key's."""
    key = await gateway.create_key(models=["fake-small", "claude-haiku-4-5"])
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        counted = await http.post(
            "/v1/messages/count_tokens", headers={"x-api-key": key["key"]}, json=GOOD
        )
        assert counted.status_code == 200 and counted.json()["input_tokens"] > 0
        models = await http.get("/v1/models", headers=bearer(key))
        assert {m["id"] for m in models.json()["data"]} == {"fake-small", "claude-haiku-4-5"}
