"""Attacks on the dashboard's session and on ``/metrics``: a non-ASCII cookie (an
unauthenticated 500, and a forged log line), a signed-out session replayed on another api
process, ``/metrics`` left open by compose, and a session cookie sent in clear behind a proxy."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from pathlib import Path

import httpx
import pytest

from api.settings import Settings
from tests.polling import eventually
from tests.security.conftest import ADMIN_KEY, Api, Stack

REPO = Path(__file__).resolve().parents[2]


async def sign_in(http: httpx.AsyncClient) -> str:
    """Sign in through the form, as a browser does; the signed-in session cookie's value."""
    form = await http.get("/ui/login")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found, form.text
    done = await http.post("/ui/login", data={"csrf": found.group(1), "admin_key": ADMIN_KEY})
    assert done.status_code == 303, done.text
    token = http.cookies.get("runcap_session")
    assert token
    return token


async def test_a_non_ascii_cookie_is_no_session(
    security_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A cookie or CSRF header with non-ASCII bytes is a stranger (sent to sign in), not a
    500; a path with %0a forges no log line."""
    caplog.set_level(logging.INFO)
    async with security_stack.api() as api, httpx.AsyncClient(base_url=api.base_url) as http:
        cookie = {b"cookie": "runcap_session=x.caf\xe9".encode("latin-1")}
        page = await http.get("/ui/runs/x%0aFORGED%20admin%20signed%20in", headers=cookie)
        await sign_in(http)
        post = await http.post(
            "/ui/logout",
            headers={b"x-csrf-token": "caf\xe9".encode("latin-1")},
        )
    lines = [line for r in caplog.records for line in r.getMessage().splitlines()[1:]]
    print(f"page: {page.status_code}, csrf post: {post.status_code}, forged lines: {lines}")
    assert page.status_code == 303 and page.headers["location"] == "/ui/login"
    assert post.status_code == 403
    assert not [line for line in lines if "FORGED" in line]


async def test_sign_out_holds_on_every_api_process(security_stack: Stack) -> None:
    """A session signed out through one api is refused by another within a second or so."""
    async with (
        security_stack.api() as one,
        security_stack.api() as other,
        httpx.AsyncClient(base_url=one.base_url) as http,
    ):
        token = await sign_in(http)

        async def runs_page(api: Api) -> int:
            async with httpx.AsyncClient(base_url=api.base_url) as browser:
                browser.cookies.set("runcap_session", token)
                return (await browser.get("/ui/runs")).status_code

        assert await runs_page(other) == 200
        form = await http.get("/ui/runs")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        out = await http.post("/ui/logout", data={"csrf": csrf.group(1)})
        assert out.status_code == 303

        async def refused_by_the_other() -> bool:
            return await runs_page(other) == 303

        assert await runs_page(one) == 303
        assert await eventually(refused_by_the_other, within=5)


async def test_compose_secrets_give_metrics_a_token(security_stack: Stack, tmp_path: Path) -> None:
    """deploy/make-secrets.sh writes a /metrics token (an empty file left it open), and an api
    reading those secrets refuses a scrape without it."""
    (tmp_path / "deploy").mkdir()
    script = tmp_path / "deploy" / "make-secrets.sh"
    shutil.copy(REPO / "deploy" / "make-secrets.sh", script)
    made = await asyncio.create_subprocess_exec(
        "sh", str(script), stdout=asyncio.subprocess.DEVNULL
    )
    assert await made.wait() == 0
    secrets = tmp_path / "deploy" / "secrets"
    token = (secrets / "runcap_metrics_token").read_text()
    print(f"metrics token written: {len(token)} characters")
    assert len(token) >= 32
    loaded = Settings(_secrets_dir=secrets)
    assert loaded.metrics_token is not None
    async with (
        security_stack.api(metrics_token=loaded.metrics_token) as api,
        httpx.AsyncClient(base_url=api.base_url) as scraper,
    ):
        anonymous = await scraper.get("/metrics")
        with_token = await scraper.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert anonymous.status_code == 401 and with_token.status_code == 200


async def session_cookie_behind_proxy(api: Api, proxy: str, proto: str) -> str:
    """The Set-Cookie of the sign-in form, asked by ``proxy`` (a loopback address)
    forwarding a browser's request that came in over ``proto``."""
    transport = httpx.AsyncHTTPTransport(local_address=proxy)
    async with httpx.AsyncClient(base_url=api.base_url, transport=transport) as http:
        form = await http.get("/ui/login", headers={"x-forwarded-proto": proto})
    return form.headers["set-cookie"]


async def test_the_session_cookie_stays_secure_behind_a_proxy(security_stack: Stack) -> None:
    """Behind a TLS proxy at another address, the session cookie is Secure when the proxy is
    trusted (``RUNCAP_FORWARDED_ALLOW_IPS``) or the public URL is https; an untrusted client's
    X-Forwarded-Proto changes nothing."""
    async with security_stack.api(forwarded_allow_ips="127.0.0.2") as api:
        trusted = await session_cookie_behind_proxy(api, "127.0.0.2", "https")
        untrusted = await session_cookie_behind_proxy(api, "127.0.0.3", "https")
    async with security_stack.api(public_url="https://runcap.example.com") as api:
        public = await session_cookie_behind_proxy(api, "127.0.0.3", "http")
    print(f"trusted: {trusted}\nuntrusted: {untrusted}\npublic: {public}")
    assert "secure" in trusted.lower().split("; ")
    assert "secure" not in untrusted.lower().split("; ")
    assert "secure" in public.lower().split("; ")
