"""The dashboard's routes in one router under ``/ui``, and its static files."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from api.ui import pages_alerts, pages_auth, pages_keys, pages_runs, pages_spend
from api.ui.render import STATIC_DIR

PREFIX = "/ui"
STATIC_PATH = "/ui/static"

router = APIRouter(prefix=PREFIX, include_in_schema=False)
for pages in (pages_auth, pages_keys, pages_runs, pages_spend, pages_alerts):
    router.include_router(pages.router)


def static_files() -> StaticFiles:
    """The dashboard's CSS, script and vendored libraries."""
    return StaticFiles(directory=STATIC_DIR)
