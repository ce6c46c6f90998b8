"""The dashboard tests' fixtures: a real browser (Debian's chromium driven by Playwright, one
per session), a signed-in page, and the folder the screenshots are kept in.

Why Debian's chromium and not Playwright's own download: that download cannot be fetched here
(and CI installs ``chromium`` with apt, as it installs PostgreSQL).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.gateway.conftest import ADMIN_KEY, Gateway

CHROMIUM = Path(os.environ.get("RUNCAP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard"
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium: required in CI, a skip elsewhere when it is not installed."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is required in CI (apt-get install chromium)")
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """One headless chromium for the whole session."""
    expect.set_options(timeout=15_000)  # a loaded 2-core machine: polling pages lag
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="session")
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Where the dashboard's screenshots go; the folder is printed once per session."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ndashboard screenshots: {ARTIFACTS}")
    return ARTIFACTS


@pytest.fixture
async def context(browser: Browser, gateway: Gateway) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (no cookies) per test, on the gateway's address."""
    fresh = await browser.new_context(base_url=gateway.base_url, viewport=VIEWPORT)  # type: ignore[arg-type]
    fresh.set_default_timeout(20_000)
    try:
        yield fresh
    finally:
        await fresh.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    """A page of a fresh profile, not signed in."""
    return await context.new_page()


@pytest.fixture
async def signed_in(page: Page) -> Page:
    """A page signed in with the admin key, on the runs page."""
    await sign_in(page, ADMIN_KEY)
    await expect(page).to_have_url(re.compile(r".*/ui/runs$"))
    return page


async def sign_in(page: Page, key: str) -> None:
    """Fill and send the sign-in form."""
    await page.goto("/ui/login")
    await page.get_by_label("Admin key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


async def shoot(page: Page, folder: Path, name: str) -> Path:
    """A full-page screenshot kept as a test artifact."""
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
