"""Admin authentication: the bearer token, and the admin api switched off without one."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from api.app import create_app
from tests.api.conftest import make_settings
from tests.api.helpers import ADMIN


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}, {"x-api-key": "x"}],
)
async def test_admin_requires_the_admin_key(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """Missing or wrong admin credentials are 401 in the admin envelope."""
    for path in ("/admin/keys", "/admin/spend", "/admin/runs"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


async def test_admin_key_works(client: httpx.AsyncClient) -> None:
    """The configured admin key opens the admin api."""
    assert (await client.get("/admin/keys", headers=ADMIN)).status_code == 200


async def test_admin_disabled_without_admin_key(sqlite_engine: Engine) -> None:
    """With no RUNCAP_ADMIN_KEY configured the admin api answers 503 'admin disabled'."""
    app = create_app(make_settings(admin_key=None), engine=sqlite_engine)
    app.state.engine = sqlite_engine
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get("/admin/keys", headers=ADMIN)
    assert response.status_code == 503
    assert "admin disabled" in response.json()["error"]["message"]
