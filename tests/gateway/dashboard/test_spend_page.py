"""The spend explorer: group and filter by step, with a chart, a table and a CSV download."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from pathlib import Path

import openai
from playwright.async_api import Page, expect

from tests.gateway.conftest import Gateway
from tests.gateway.dashboard.conftest import shoot
from tests.gateway.test_sdks import MESSAGES, settled


async def test_spend_grouped_and_filtered_by_step(
    signed_in: Page, gateway: Gateway, artifacts: Path
) -> None:
    """Grouping one task's calls by step matches the admin api; filtering to step:edit keeps
    only its calls; the chart draws and the CSV holds the same figures."""
    key = await gateway.create_key(name=f"spend-{uuid.uuid4().hex[:6]}", budget_usd="5")
    task = uuid.uuid4().hex[:8]
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=key["key"], max_retries=0
    ) as client:
        calls = [("plan", "fake-large"), ("edit", "fake-small"), ("edit", "fake-small")]
        for step, model in [*calls, ("test", "fake-small")]:
            await client.chat.completions.create(
                model=model,
                messages=MESSAGES,
                extra_body={"metadata": {"tags": [f"task:{task}", f"step:{step}"]}},
            )
    await settled(gateway, f"{key['id']}.{task}", 4)
    expected = (
        await gateway.admin.get("/admin/spend", params={"group_by": "step", "tag": f"task:{task}"})
    ).json()
    page = signed_in
    await page.get_by_role("link", name="Spend").click()
    await page.get_by_label("Group by").select_option("step")
    await page.get_by_label("Tags").fill(f"task:{task}")
    await page.get_by_label("Range").select_option("1h")
    await page.get_by_role("button", name="Show").click()
    table = page.get_by_test_id("spend-table")
    await expect(table.locator("tbody tr")).to_have_count(3)
    for row in expected["rows"]:
        cells = table.locator(f'tr[data-group="{row["group"]}"] td')
        await expect(cells.nth(1)).to_have_text(str(row["calls"]))
        await expect(cells.nth(2)).to_have_text("$" + row["cost_usd"])
    await expect(page.get_by_test_id("total-cost")).to_have_text("$" + expected["total_cost_usd"])
    await expect(page.get_by_test_id("chart").locator("canvas")).to_have_count(1)
    await shoot(page, artifacts, "09-spend-by-step")

    async with page.expect_download() as download_info:
        await page.get_by_test_id("csv").click()
    download = await download_info.value
    text = await asyncio.to_thread(Path(await download.path()).read_text)
    lines = list(csv.DictReader(io.StringIO(text)))
    assert {line["group"] for line in lines} == {"step:plan", "step:edit", "step:test"}
    assert sum(int(line["calls"]) for line in lines) == 4

    await page.get_by_label("Tags").fill(f"task:{task} step:edit")
    await page.get_by_role("button", name="Show").click()
    await expect(table.locator("tbody tr")).to_have_count(1)
    edit = next(r for r in expected["rows"] if r["group"] == "step:edit")
    await expect(table.locator('tr[data-group="step:edit"] td').nth(1)).to_have_text("2")
    await expect(page.get_by_test_id("total-cost")).to_have_text("$" + edit["cost_usd"])
    await shoot(page, artifacts, "10-spend-step-edit")

    await page.get_by_label("Group by").select_option("key")
    await page.get_by_role("button", name="Show").click()
    await expect(table.locator("tbody tr")).to_have_count(1)
    await expect(table).to_contain_text(f"{key['name']} ({key['id']})")
