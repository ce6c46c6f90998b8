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
from workflows.converter import DATA_CONVERTER


async def main() -> None:
    settings = get_settings()
    engine = make_engine(settings.database_url)
    create_tables(engine)
    client = await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
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
