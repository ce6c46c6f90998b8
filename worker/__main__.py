"""``python -m worker``: run runcap's worker until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from temporalio.client import Client

from db.engine import create_tables, make_engine
from providers.registry import build_providers, make_http_client
from telemetry import setup as telemetry
from worker.app import build_worker
from worker.settings import get_settings


async def main() -> None:
    settings = get_settings()
    engine = make_engine(settings.database_url)
    create_tables(engine)
    client = await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        interceptors=telemetry.temporal_interceptors(),  # workers use their client's
    )
    async with make_http_client() as http:
        providers = build_providers(settings.provider_configs(), http)
        worker = build_worker(
            client,
            engine=engine,
            http=http,
            providers=providers,
            alert_webhook_url=settings.alert_webhook_url,
            max_concurrent_activities=settings.max_concurrent_activities,
            task_queue=settings.task_queue,
        )
        logging.info("runcap worker polling %s on %s", worker.task_queue, settings.temporal_address)
        await worker.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # One line per provider request is noise at agent call rates; failures are logged anyway.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    telemetry.configure("runcap-worker")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
    finally:
        telemetry.shutdown()
