"""``python -m api``: serve the gateway with uvicorn, one process, on the configured address.

It checks before it serves, and exits 2 with one line saying what to fix: a provider must be
configured, Temporal's client configuration must be readable (``settings/temporal.py``), and the
database schema must be at this code's revision (the migrations run first).

Why uvloop/httptools and no access log: the gateway's added latency is its product figure, and
those are the cheap wins; they are used when installed and skipped otherwise. uvicorn's own
bounds are set from the settings: connections held at once (``limit_concurrency``), idle
keep-alive time, and, through ``api.http_protocol``, how long and how large request headers
may be.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from api.app import create_app
from api.http_protocol import bounded_protocol
from api.settings import Settings, get_settings
from db.engine import engine_from
from db.migrate import SchemaError, check_schema
from settings import SettingsError
from telemetry import setup as telemetry


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def preflight() -> Settings:
    """The settings, once they name a provider and the database's schema is current."""
    settings = get_settings()
    settings.require_provider()
    settings.temporal()
    engine = engine_from(settings)
    try:
        check_schema(engine)
    finally:
        engine.dispose()
    return settings


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the api (tests serve with them too): its bounds on connections,
    idle time and headers (``api.http_protocol``), and whose forwarded headers it believes."""
    http: Any = "h11"  # whose own bound on headers is 16 KiB; it has no header timeout
    if _available("httptools"):
        http = bounded_protocol(
            settings.server_header_timeout_seconds, settings.server_max_header_bytes
        )
    return {
        "loop": "uvloop" if _available("uvloop") else "asyncio",
        "http": http,
        "access_log": False,
        "workers": 1,
        "timeout_keep_alive": settings.server_keep_alive_seconds,
        "limit_concurrency": settings.server_limit_concurrency
        or 2 * settings.max_concurrent_calls + 100,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }


@asynccontextmanager
async def frozen_heap(_app: object) -> AsyncIterator[None]:
    """Once started, move everything loaded so far (modules, the price table, the routes) out
    of the garbage collector's sight: a full collection then scans only what calls make, not
    the whole heap. Measured at 200 agents: full collections paused the event loop ~80 ms
    each, the calls in flight with it; this is the 99th percentile's largest cause."""
    gc.collect()
    gc.freeze()
    yield


def main() -> int:
    """Run the api until interrupted; the exit status says whether it could start."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # One line per provider request is noise at agent call rates; failures are logged anyway.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = preflight()
    except (SettingsError, SchemaError, ValidationError) as error:
        print(f"runcap api: {error}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:
        print(f"runcap api: database error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    telemetry.configure("runcap-api")
    app = create_app(settings)
    app.state.extra_lifespans.append(frozen_heap)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, **server_options(settings))
    telemetry.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
