"""The run page shows the run's burn rate and when its cap is reached at that rate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
from playwright.async_api import Page, expect

from tests.gateway.conftest import Gateway
from tests.gateway.dashboard.conftest import shoot
from tests.gateway.test_sdks import MESSAGES, settled


async def test_run_page_shows_burn_rate_and_cap_forecast(
    signed_in: Page, gateway: Gateway, artifacts: Path
) -> None:
    """After calls, the page's burn rate and cap time are the run JSON's forecast, live."""
    key = await gateway.create_key(name=f"eta-{uuid.uuid4().hex[:6]}", budget_usd="0.01")
    task = uuid.uuid4().hex[:8]
    run_id = f"{key['id']}.{task}"
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=key["key"], max_retries=0
    ) as client:
        for _ in range(2):
            await client.chat.completions.create(
                model="fake-small",
                messages=MESSAGES,
                extra_body={"metadata": {"tags": [f"task:{task}"]}},
            )
    await settled(gateway, run_id, 2)
    page = signed_in
    await page.goto(f"/ui/runs/{run_id}")
    run = (await gateway.admin.get(f"/admin/runs/{run_id}")).json()
    forecast = run["forecast"]
    assert forecast["window_spent_usd"] == run["spent_usd"]
    await expect(page.get_by_test_id("burn-rate")).to_have_text(
        f"${forecast['burn_usd_per_minute']}/min"
    )
    # The page and the JSON are read a moment apart: the cap time moves with the clock, the
    # rate does not (a run younger than a minute is read over a minute).
    cap_at = page.get_by_test_id("cap-at")
    await expect(cap_at).to_contain_text(" UTC")
    shown = (await cap_at.text_content() or "").split(" UTC")[0]
    on_page = datetime.strptime(shown, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert abs(on_page - datetime.fromisoformat(forecast["cap_at"])) < timedelta(seconds=30)
    await shoot(page, artifacts, "09-run-forecast")
