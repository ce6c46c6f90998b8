"""Sessions and sub-agents in the dashboard: the key form sets what makes a run and the
sub-agent share, and a session's run page lists its sub-agents' runs, which link back."""

from __future__ import annotations

import uuid
from pathlib import Path

from playwright.async_api import Page, expect

from tests.gateway.conftest import Gateway
from tests.gateway.dashboard.conftest import shoot
from tests.gateway.test_sdks import claude, settled
from tests.gateway.test_sessions import AGENT, ask, claude_headers


async def test_key_form_sets_run_by_and_subagent_share(signed_in: Page, gateway: Gateway) -> None:
    """Unticking sessions and giving a share stores ``run_by: ["task"]`` and ``0.25``, and the
    edit form shows them back."""
    page = signed_in
    name = f"tree-{uuid.uuid4().hex[:6]}"
    await page.goto("/ui/keys")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Total").fill("5")
    await page.get_by_label("An agent's session").uncheck()
    await page.get_by_label("Sub-agent share").fill("0.25")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.get_by_test_id("new-secret")).to_be_visible()
    listed = (await gateway.admin.get("/admin/keys")).json()["keys"]
    [key] = [k for k in listed if k["name"] == name]
    assert key["run_by"] == ["task"] and key["subagent_budget_share"] == "0.25"
    await page.goto(f"/ui/keys/{key['id']}")
    await expect(page.get_by_label("A task: tag")).to_be_checked()
    await expect(page.get_by_label("An agent's session")).not_to_be_checked()
    await expect(page.get_by_label("Sub-agent share")).to_have_value("0.25")


async def test_run_page_shows_the_tree(signed_in: Page, gateway: Gateway, artifacts: Path) -> None:
    """A session's run page lists its sub-agent's run with its spend; the child's page and the
    runs list link back to the parent."""
    key = await gateway.create_key(budget_usd="5", budget_usd_per_run="1")
    client = claude(gateway, key["key"])
    session = str(uuid.uuid4())
    parent, child = f"{key['id']}@{session}", f"{key['id']}@{session}~{AGENT}"
    await ask(client, claude_headers(session))
    await ask(client, claude_headers(session, AGENT))
    await settled(gateway, child, 1)
    page = signed_in
    await page.goto(f"/ui/runs/{parent}")
    subs = page.get_by_test_id("sub-runs")
    await expect(subs).to_contain_text(child)
    await shoot(page, artifacts, "08-run-tree")
    await subs.get_by_role("link", name=child).click()
    await expect(page.get_by_test_id("parent-run")).to_contain_text(parent)
    await page.goto("/ui/runs")
    await expect(page.locator(f'tr[data-run="{child}"]')).to_contain_text("sub-agent of")
