"""The runs pages: a run burns down live while calls are made, and the alerts it raised."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import openai
from playwright.async_api import Page, expect

from tests.gateway.conftest import TEMPORAL_UI, Gateway
from tests.gateway.dashboard.conftest import shoot
from tests.gateway.test_sdks import MESSAGES, settled
from tests.polling import eventually


async def test_run_burns_down_live_while_calls_are_made(
    signed_in: Page, gateway: Gateway, artifacts: Path
) -> None:
    """The run page's spent figure rises with each call without a reload, up to the cap, and
    the runs list and alerts page show the run and what it crossed."""
    key = await gateway.create_key(
        name=f"burn-{uuid.uuid4().hex[:6]}", budget_usd="1", budget_usd_per_run="0.0002"
    )
    task = uuid.uuid4().hex[:8]
    run_id = f"{key['id']}.{task}"
    page = signed_in
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=key["key"], max_retries=0
    ) as client:

        async def call(step: str) -> bool:
            try:
                await client.chat.completions.create(
                    model="fake-small",
                    messages=MESSAGES,
                    extra_body={"metadata": {"tags": ["agent:burner", f"task:{task}", step]}},
                )
            except openai.RateLimitError:
                return False
            return True

        assert await call("step:plan")
        await settled(gateway, run_id, 1)
        await page.goto(f"/ui/runs/{run_id}")
        spent = page.get_by_test_id("spent")
        await expect(spent).to_have_text("$" + await spent_usd(gateway, run_id))
        first = await spent.text_content()
        await expect(page.get_by_test_id("budget")).to_have_text("$0.000200")
        link = page.get_by_test_id("temporal-link")
        await expect(link).to_have_attribute(
            "href", f"{TEMPORAL_UI}/namespaces/default/workflows/run-{run_id}"
        )
        await page.evaluate("window.notReloaded = true")

        for _ in range(3):
            assert await call("step:edit")
        await expect(spent).not_to_have_text(first or "")
        await expect(spent).to_have_text("$" + await spent_usd(gateway, run_id))
        assert Decimal((await spent.text_content() or "$0")[1:]) > Decimal((first or "$0")[1:])
        assert await page.evaluate("window.notReloaded") is True
        await expect(page.get_by_test_id("calls-table").locator("tbody tr")).to_have_count(4)
        await shoot(page, artifacts, "05-run-live")

        calls = 4
        while await call("step:edit"):  # until the cap refuses a call
            calls += 1
            assert calls < 100, "the cap never refused a call"
        run = (await gateway.admin.get(f"/admin/runs/{run_id}")).json()
        # Refused once the rest cannot pay for a useful call: what is left is below one call.
        assert Decimal(run["remaining_usd"]) < Decimal(run["spent_usd"]) / calls * 5
        await expect(page.get_by_test_id("remaining")).to_have_text("$" + run["remaining_usd"])
        await expect(page.get_by_test_id("spent")).to_have_text("$" + run["spent_usd"])
        share = await page.get_by_test_id("burn").locator(".spent").evaluate("e => e.style.width")
        assert float(share.removesuffix("%")) > 50
        rows = page.get_by_test_id("calls-table").locator("tbody tr")
        await expect(rows).to_have_count(calls)  # the calls table follows the ledger live too
        assert await page.evaluate("window.notReloaded") is True
        await shoot(page, artifacts, "06-run-exhausted")

    await page.get_by_role("link", name="Runs").first.click()
    row = page.get_by_test_id("runs").locator(f'tr[data-run="{run_id}"]')
    await expect(row).to_contain_text(key["name"])
    await expect(row.get_by_test_id("spent")).to_have_text("$" + await spent_usd(gateway, run_id))
    await shoot(page, artifacts, "07-runs")

    async def alerted() -> list[dict[str, str]]:
        found = await gateway.admin.get("/admin/alerts", params={"run_id": run_id})
        alerts: list[dict[str, str]] = found.json()["alerts"]
        delivered = all(alert["delivered_at"] for alert in alerts)
        return alerts if len(alerts) >= 2 and delivered else []

    alerts = await eventually(alerted)
    # A call reserves its worst case, so refusals start before the cap is spent: the run
    # crosses 50% (maybe more) and then refuses.
    assert {(a["kind"], a["threshold_percent"]) for a in alerts} >= {
        ("threshold", 50), ("refused", 0),
    }  # fmt: skip
    await page.get_by_role("link", name="Alerts").click()
    table = page.get_by_test_id("alerts")
    await expect(table).to_contain_text(f"run {run_id} crossed 50% of its $0.000200 budget")
    await expect(table).to_contain_text(f"run {run_id}: a call was refused")
    # Each row says the alert's scope and how its (signed) webhook delivery went.
    crossed = table.locator("tr", has_text=f"run {run_id} crossed 50%")
    await expect(crossed.get_by_test_id("scope")).to_have_text("run")
    await expect(crossed.get_by_test_id("delivery")).to_have_text("delivered")
    await shoot(page, artifacts, "08-alerts")


async def spent_usd(gateway: Gateway, run_id: str) -> str:
    """The run's spend as the admin api reads it from the workflow."""
    run = (await gateway.admin.get(f"/admin/runs/{run_id}")).json()
    spent: str = run["spent_usd"]
    return spent
