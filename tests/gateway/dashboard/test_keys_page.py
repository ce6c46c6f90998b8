"""The keys page: create a key (its secret shown once), edit its budgets and limits, revoke."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import openai
from playwright.async_api import BrowserContext, Page, expect

from tests.gateway.conftest import Gateway
from tests.gateway.dashboard.conftest import shoot
from tests.gateway.test_sdks import MESSAGES


async def test_create_key_shows_its_secret_once(
    signed_in: Page, context: BrowserContext, gateway: Gateway, artifacts: Path
) -> None:
    """The new key's secret is shown with a copy button, works for calls, and is never shown
    again."""
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = signed_in
    name = f"ui-{uuid.uuid4().hex[:6]}"
    await page.get_by_role("link", name="Keys").click()
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Total").fill("5")
    await page.get_by_label("Per run").fill("0.75")
    await page.get_by_label("Default tags").fill("agent:ui")
    await page.get_by_role("button", name="Create key").click()
    secret_box = page.get_by_test_id("new-secret")
    await expect(secret_box).to_have_text(re.compile(r"^rc-\S{40,}$"))
    secret = (await secret_box.text_content() or "").strip()
    await page.get_by_role("button", name="Copy").click()
    await expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    row = page.get_by_test_id("keys").locator("tr", has_text=name)
    await expect(row).to_contain_text("$0.750000")
    await shoot(page, artifacts, "03-key-created")

    async with openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=secret, max_retries=0
    ) as client:
        reply = await client.chat.completions.create(model="fake-small", messages=MESSAGES)
    assert reply.choices[0].message.content

    await page.goto("/ui/keys")
    await expect(page.get_by_test_id("keys")).to_contain_text(name)
    assert secret not in await page.content()
    assert await page.get_by_test_id("new-secret").count() == 0


async def test_edit_budgets_and_limits_then_revoke(
    signed_in: Page, gateway: Gateway, artifacts: Path
) -> None:
    """The edit form saves like PATCH /admin/keys/{id}, refuses a bad value, and revoke works."""
    key = await gateway.create_key(
        name=f"edit-{uuid.uuid4().hex[:6]}", budget_usd="5", budget_usd_per_run="2"
    )
    page = signed_in
    await page.goto(f"/ui/keys/{key['id']}")
    await expect(page.get_by_label("Per run")).to_have_value("2.000000")
    await page.get_by_label("Per run").fill("")
    await page.get_by_label("Per day").fill("3.5")
    await page.get_by_label("Requests / min").fill("12")
    await page.get_by_label("Time zone").fill("Europe/Paris")
    await shoot(page, artifacts, "04-key-edit")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Saved {key['id']}")
    stored = (await gateway.admin.get(f"/admin/keys/{key['id']}")).json()
    assert stored["budget_usd_per_run"] is None and stored["budget_usd_per_day"] == "3.500000"
    assert stored["rpm"] == 12 and stored["timezone"] == "Europe/Paris"

    await page.goto(f"/ui/keys/{key['id']}")
    await page.get_by_label("Time zone").fill("Mars/Olympus")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("alert")).to_contain_text("unknown timezone")
    assert (await gateway.admin.get(f"/admin/keys/{key['id']}")).json()[
        "timezone"
    ] == "Europe/Paris"

    await page.goto("/ui/keys")
    page.once("dialog", lambda dialog: dialog.accept())
    row = page.get_by_test_id("keys").locator("tr", has_text=key["id"])
    await row.get_by_role("button", name="Revoke").click()
    await expect(row).to_contain_text("revoked")
    assert (await gateway.admin.get(f"/admin/keys/{key['id']}")).json()["revoked"] is True
