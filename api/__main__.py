"""``python -m api``: serve the gateway with uvicorn, one process, on the configured address.

Why uvloop/httptools and no access log: the gateway's added latency is its product figure, and
those are the cheap wins; they are used when installed and skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import logging

import uvicorn

from api.app import create_app
from api.settings import get_settings
from telemetry import setup as telemetry


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def main() -> None:
    """Run the api until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # One line per provider request is noise at agent call rates; failures are logged anyway.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    telemetry.configure("runcap-api")
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        loop="uvloop" if _available("uvloop") else "asyncio",
        http="httptools" if _available("httptools") else "h11",
        access_log=False,
        workers=1,
        # Longer than an agent's pause between calls, so its SDK's pooled connection is not
        # closed under it (uvicorn's default of 5 s races with reuse and drops requests).
        timeout_keep_alive=75,
    )
    telemetry.shutdown()


if __name__ == "__main__":
    main()
