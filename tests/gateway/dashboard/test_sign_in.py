"""Signing in to the dashboard: the admin key, the session cookie, CSRF and signing out."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.async_api import BrowserContext, Page, expect

from tests.gateway.conftest import ADMIN_KEY, Gateway
from tests.gateway.dashboard.conftest import shoot, sign_in


async def test_wrong_key_is_refused_and_right_key_signs_in(
    page: Page, context: BrowserContext, artifacts: Path
) -> None:
    """Pages send a stranger to sign in; a wrong key is refused; the admin key gets a
    HttpOnly, SameSite=Strict session cookie that does not hold the key."""
    await page.goto("/ui/keys")
    await expect(page).to_have_url(re.compile(r".*/ui/login$"))
    await shoot(page, artifacts, "01-sign-in")
    await sign_in(page, "rc-admin-wrong")
    await expect(page.get_by_role("alert")).to_have_text("That is not the admin key.")
    await shoot(page, artifacts, "02-sign-in-refused")
    assert await page.get_by_role("link", name="Keys").count() == 0
    await sign_in(page, ADMIN_KEY)
    await expect(page).to_have_url(re.compile(r".*/ui/runs$"))
    (cookie,) = [c for c in await context.cookies() if c["name"] == "runcap_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert ADMIN_KEY not in cookie["value"]
    assert await page.evaluate("document.cookie") == ""  # no script can read it


async def test_posts_without_the_csrf_token_are_refused(
    signed_in: Page, context: BrowserContext, gateway: Gateway
) -> None:
    """A signed-in POST with no CSRF token, or another session's, is a 403 that changes nothing."""
    name = "csrf-probe"
    form: dict[str, str | float | bool] = {"name": name, "budget_usd": "1"}
    missing = await context.request.post("/ui/keys", form=form)
    forged = await context.request.post("/ui/keys", form={**form, "csrf": "forged"})
    assert missing.status == 403 and forged.status == 403
    assert "security token" in await missing.text()
    keys = (await gateway.admin.get("/admin/keys")).json()["keys"]
    assert name not in {k["name"] for k in keys}
    signed_out = await context.request.post("/ui/logout")
    assert signed_out.status == 403
    await signed_in.goto("/ui/keys")
    await expect(signed_in).to_have_url(re.compile(r".*/ui/keys$"))  # still signed in


async def test_sign_out_ends_the_session(
    signed_in: Page, context: BrowserContext, gateway: Gateway
) -> None:
    """Signing out sends back to the sign-in form, and the old token no longer works."""
    (old,) = [c for c in await context.cookies() if c["name"] == "runcap_session"]

    async def runs_page_with_old_token() -> int:
        async with httpx.AsyncClient(base_url=gateway.base_url) as http:
            cookie = {"cookie": f"runcap_session={old['value']}"}
            return (await http.get("/ui/runs", headers=cookie)).status_code

    assert await runs_page_with_old_token() == 200
    await signed_in.get_by_role("button", name="Sign out").click()
    await expect(signed_in).to_have_url(re.compile(r".*/ui/login$"))
    assert not [c for c in await context.cookies() if c["value"] == old["value"]]
    assert await runs_page_with_old_token() == 303  # to the sign-in form
