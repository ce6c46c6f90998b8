"""``python -m worker``: run runcap's worker until interrupted.

It checks before it polls, and exits 2 with one line saying what to fix: a provider must be
configured, the database schema must be at this code's revision (the migrations run first), and
Temporal must answer with the configuration given (``settings/temporal.py``: address, namespace,
TLS client certificate or API key).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from db.engine import engine_from
from db.migrate import SchemaError, check_schema
from providers.registry import build_providers, make_http_client
from settings import SettingsError
from settings.temporal import TemporalUnreachable
from telemetry import setup as telemetry
from worker.app import build_worker
from worker.health import clear, heartbeat
from worker.janitor import janitor
from worker.settings import WorkerSettings, get_settings
from workflows.converter import DATA_CONVERTER


async def run(settings: WorkerSettings) -> None:
    """Poll runcap's task queue until cancelled."""
    engine = engine_from(settings)
    try:
        await asyncio.to_thread(check_schema, engine)
        temporal = settings.temporal()
        client = await temporal.connect(
            data_converter=DATA_CONVERTER,
            interceptors=telemetry.temporal_interceptors(),  # workers use their client's
        )
        async with make_http_client() as http:
            providers = build_providers(settings.provider_configs(), http)
            worker = build_worker(
                client,
                engine=engine,
                http=http,
                providers=providers,
                alert_webhook=settings.alert_webhook(),
                max_concurrent_activities=settings.max_concurrent_activities,
                task_queue=settings.task_queue,
            )
            if settings.alert_webhook_url is not None and settings.alert_webhook_secret is None:
                logging.warning("alerts are posted unsigned: set RUNCAP_ALERT_WEBHOOK_SECRET")
            logging.info("runcap worker polling %s on %s", worker.task_queue, temporal)
            # What is loaded now stays: a full collection then scans only what tasks make (a
            # full scan of the loaded heap paused the process ~80 ms, its workflow tasks too).
            gc.collect()
            gc.freeze()
            async with asyncio.TaskGroup() as tasks:
                if settings.health_file is not None:
                    beat = tasks.create_task(heartbeat(settings.health_file, client, worker))
                tidying = tasks.create_task(janitor(client, engine, settings.task_queue))
                await worker.run()
                tidying.cancel()
                if settings.health_file is not None:
                    beat.cancel()
    finally:
        engine.dispose()


def main() -> int:
    """Entry point; the exit status says whether the worker could start."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # One line per provider request is noise at agent call rates; failures are logged anyway.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = get_settings()
        settings.require_provider()
        settings.temporal()  # a bad Temporal configuration is reported before anything starts
        clear(settings.health_file)
    except (SettingsError, ValidationError) as error:
        print(f"runcap worker: {error}", file=sys.stderr)
        return 2
    telemetry.configure("runcap-worker")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(settings))
    except (SchemaError, TemporalUnreachable) as error:
        print(f"runcap worker: {error}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:
        print(f"runcap worker: database error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    finally:
        telemetry.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
