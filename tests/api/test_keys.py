"""Virtual keys through the admin api, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.auth import KeyCache, hash_secret
from api.errors import AuthError
from db.models import VirtualKey
from tests.api.helpers import ADMIN

NEW_KEY = {
    "name": "coding-agent",
    "budget_usd": "20",
    "max_parallel": 4,
    "rpm": 60,
    "tpm": 100000,
    "models": ["fake-small"],
    "tags": ["agent:coder"],
}


async def create(client: httpx.AsyncClient, **changes: object) -> dict[str, object]:
    response = await client.post("/admin/keys", json={**NEW_KEY, **changes}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_create_shows_secret_once_and_stores_only_its_hash(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    """Creating a key answers 201 with the rc- secret; the database holds only its sha256."""
    body = await create(client)
    secret = str(body["key"])
    assert secret.startswith("rc-") and len(secret) > 40
    assert body["budget_usd"] == "20.000000"
    assert body["key_prefix"] == secret[:8]
    assert body["models"] == ["fake-small"] and body["tags"] == ["agent:coder"]
    with Session(engine) as session:
        stored = session.exec(select(VirtualKey)).one()
    assert stored.key_hash == hash_secret(secret)
    assert stored.budget_total_micros == 20_000_000
    assert secret not in stored.model_dump_json()


async def test_list_and_get_never_show_secrets(client: httpx.AsyncClient) -> None:
    """Listing and reading keys shows policy fields but never the secret or its hash."""
    first = await create(client, name="one", budget_usd=0.5)
    await create(client, name="two", budget_usd="1.000001")
    listing = (await client.get("/admin/keys", headers=ADMIN)).json()
    assert [k["name"] for k in listing["keys"]] == ["one", "two"]
    assert [k["budget_usd"] for k in listing["keys"]] == ["0.500000", "1.000001"]
    one = (await client.get(f"/admin/keys/{first['id']}", headers=ADMIN)).json()
    for shown in [*listing["keys"], one]:
        assert "key" not in shown and "key_hash" not in shown
        assert str(first["key"]) not in str(shown)
    assert one["id"] == first["id"] and one["revoked"] is False


async def test_revoke_is_effective_on_next_lookup_and_spares_other_keys(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """After a revoke the cached key fails at once; another key keeps working."""
    doomed, kept = await create(client, name="doomed"), await create(client, name="kept")
    cache: KeyCache = app.state.key_cache
    assert (await cache.lookup(str(doomed["key"]))).id == doomed["id"]
    revoked = await client.post(f"/admin/keys/{doomed['id']}/revoke", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    with pytest.raises(AuthError):
        await cache.lookup(str(doomed["key"]))
    assert (await cache.lookup(str(kept["key"]))).id == kept["id"]
    again = await client.post(f"/admin/keys/{doomed['id']}/revoke", headers=ADMIN)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


async def test_v1_call_with_revoked_key_gets_401(client: httpx.AsyncClient) -> None:
    """A /v1 request authenticates by Bearer or x-api-key and is refused once revoked."""
    key = await create(client)
    bearer = {"Authorization": f"Bearer {key['key']}"}
    assert (await client.get("/v1/test/whoami", headers=bearer)).json() == {"key_id": key["id"]}
    x_api_key = {"x-api-key": str(key["key"])}
    assert (await client.get("/v1/messages/test/whoami", headers=x_api_key)).status_code == 200
    await client.post(f"/admin/keys/{key['id']}/revoke", headers=ADMIN)
    refused = await client.get("/v1/test/whoami", headers=bearer)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"


async def test_unknown_key_ids_answer_404(client: httpx.AsyncClient) -> None:
    """Reading or revoking a key that does not exist is a 404 in the admin envelope."""
    for response in (
        await client.get("/admin/keys/key_nope", headers=ADMIN),
        await client.post("/admin/keys/key_nope/revoke", headers=ADMIN),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "changes",
    [
        {"budget_usd": "0"},
        {"budget_usd": -5},
        {"budget_usd": "0.0000001"},
        {"budget_usd": "1000000.000001"},
        {"budget_usd": "NaN"},
        {"budget_usd": "twenty"},
        {"budget_usd": True},
        {"name": ""},
        {"name": "x" * 101},
        {"rpm": -1},
        {"models": [""]},
        {"tags": ["bad tag"]},
        {"tags": ["task:1", "task:2"]},
    ],
)
async def test_bad_key_requests_are_refused(
    client: httpx.AsyncClient, changes: dict[str, object]
) -> None:
    """Invalid budgets, names, limits, models and tags are 4xx with a message, nothing stored."""
    response = await client.post("/admin/keys", json={**NEW_KEY, **changes}, headers=ADMIN)
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["message"]
    assert (await client.get("/admin/keys", headers=ADMIN)).json() == {"keys": []}
