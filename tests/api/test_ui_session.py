"""Dashboard sessions: signed, expiring tokens; CSRF tokens bound to the session; refusals."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine
from temporalio.client import Client

from api.app import create_app
from api.ui.session import SIGNED_IN_SECONDS, SessionSigner
from tests.api.conftest import make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_tokens_are_signed_expire_and_die_at_sign_out() -> None:
    """A token reads back until it expires or is signed out; an altered one never does."""
    clock = Clock()
    signer = SessionSigner("admin-secret", clock=clock)
    session, token = signer.new(admin=True)
    assert signer.read(token) == session and session.admin
    payload, signature = token.split(".")
    assert signer.read(payload + "." + signature[:-2] + "AA") is None
    assert signer.read(payload[:-2] + "AA." + signature) is None
    assert SessionSigner("another-admin-key", clock=clock).read(token) is None
    assert "admin-secret" not in token
    clock.now += SIGNED_IN_SECONDS
    assert signer.read(token) is None
    clock.now -= 10
    signer.sign_out(session)
    assert signer.read(token) is None
    for junk in ("", "a.b.c", "x" * 600, "e30.e30"):
        assert signer.read(junk) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    """A session's CSRF token passes for it and for no other session."""
    signer = SessionSigner("admin-secret")
    one, _ = signer.new(admin=False)
    two, _ = signer.new(admin=True)
    assert signer.csrf_ok(one, signer.csrf_token(one))
    assert not signer.csrf_ok(two, signer.csrf_token(one))
    assert not signer.csrf_ok(one, None) and not signer.csrf_ok(one, "")


async def test_pages_send_strangers_to_sign_in(client: httpx.AsyncClient) -> None:
    """A page redirects to sign-in; an htmx fragment gets HX-Redirect; a POST without a
    session is refused before any work; the login page sets a strict cookie."""
    page = await client.get("/ui/keys")
    assert page.status_code == 303 and page.headers["location"] == "/ui/login"
    fragment = await client.get("/ui/runs/rows", headers={"hx-request": "true"})
    assert fragment.status_code == 401 and fragment.headers["hx-redirect"] == "/ui/login"
    post = await client.post("/ui/keys", data={"name": "x", "budget_usd": "1"})
    assert post.status_code == 403
    login = await client.get("/ui/login")
    assert login.status_code == 200 and 'name="csrf"' in login.text
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    assert "script-src 'self'" in login.headers["content-security-policy"]
    assert login.headers["cache-control"] == "no-store"


async def test_dashboard_is_off_without_an_admin_key(
    sqlite_engine: Engine, temporal_client: Client
) -> None:
    """With no admin key nobody can sign in: the dashboard answers 503 saying why."""
    app: FastAPI = create_app(
        make_settings(admin_key=None), engine=sqlite_engine, temporal_client=temporal_client
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runcap.test") as http:
            response = await http.get("/ui/login")
    assert response.status_code == 503 and "RUNCAP_ADMIN_KEY" in response.text
