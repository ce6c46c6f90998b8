"""``make demo``: an agent written as a workflow fixes a bug, on the gateway ``make run`` started.

The agent plans, edits, runs the tests, reads the failure and edits again; every model call goes
through the budget core, and the demo prints what each step cost and where to look at the run.

When ``make run`` is up (a Temporal server answers where Temporal's environment configuration
says, ``settings/temporal.py``: ``TEMPORAL_ADDRESS`` or ``RUNCAP_TEMPORAL_ADDRESS``, a profile,
else 127.0.0.1 on ``RUNCAP_TEMPORAL_PORT``), the demo runs there, so its run shows in that
Temporal UI, in ``/admin/spend`` and in the dashboard. The production worker never registers
examples, so the demo brings its own worker for the example agent, on its own task queue, writing
the gateway's database (``RUNCAP_DATABASE_URL``, else ``.runcap/runcap.db``) and calling the
provider ``make run`` uses (its fake provider on ``RUNCAP_FAKE_PROVIDER_URL`` or port 9100, or the
real keys). Only when no Temporal server answers does it start a private stack: an in-memory dev
server, the fake provider and a throwaway database, all gone when it ends.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.client import Client

from db.engine import make_engine
from db.migrate import upgrade
from examples.agent import AgentReport, AgentTask, ExampleAgent
from examples.suite import run_tests
from fake_provider import FakeProvider
from providers.base import ProviderConfig
from providers.pricing import PriceBook
from providers.registry import build_providers, make_http_client
from settings import RuncapSettings
from settings.temporal import TemporalTarget, TemporalUnreachable
from worker.app import build_worker
from worker.devserver import DevServer
from worker.launch import LaunchSettings, database_url, uses_fake_provider
from workflows.contracts import Target
from workflows.converter import DATA_CONVERTER
from workflows.money import micros_to_usd
from workflows.run_contracts import workflow_id as run_workflow_id

DEMO_QUEUE = "runcap-demo"
DEMO_BUDGET_MICROS = 50_000
"""The demo run's cap: $0.05."""
CONNECT_SECONDS = 3.0
DEMO_MODELS = {
    "fake": ("fake-large", "fake-small"),
    "openai": ("gpt-4.1-mini", "gpt-4.1-nano"),
    "anthropic": ("claude-haiku-4-5",),
}
"""The chain of the demo's agent, from the providers configured, in this order."""


class DemoSettings(LaunchSettings):
    """``make run``'s settings (the same ``RUNCAP_*`` variables), plus where its parts are."""

    temporal_ui_url: str | None = None

    @property
    def temporal_default_address(self) -> str:
        """``make run``'s dev server, on the port it was told to use."""
        return f"127.0.0.1:{self.temporal_port}"

    def fake_url(self) -> str:
        return self.fake_provider_url or f"http://127.0.0.1:{self.fake_provider_port}"


@dataclass
class DemoRun:
    report: AgentReport
    workflow_id: str
    on_gateway: bool
    """True when it ran on a running gateway, False on a private stack."""


async def running_temporal(target: TemporalTarget) -> Client | None:
    """A client of the Temporal server ``target`` names, or ``None`` when none answers soon."""
    host, _, port = target.address.rpartition(":")
    try:
        async with asyncio.timeout(CONNECT_SECONDS):
            _, writer = await asyncio.open_connection(host or "127.0.0.1", int(port))
            writer.close()
            return await target.connect(data_converter=DATA_CONVERTER)
    except (OSError, ValueError, TemporalUnreachable, TimeoutError):
        return None


async def answers(url: str) -> bool:
    """Whether an HTTP server answers at ``url`` (any status will do)."""
    try:
        async with httpx.AsyncClient(timeout=CONNECT_SECONDS) as http:
            await http.get(url)
    except httpx.HTTPError:
        return False
    return True


def demo_chain(configs: list[ProviderConfig], prices: PriceBook) -> list[Target]:
    configured = {config.name: config for config in configs}
    chain = [
        Target(name, model, configured[name].api, prices.price_of(model))
        for name, models in DEMO_MODELS.items()
        if name in configured
        for model in models
    ]
    if not chain:
        raise SystemExit("runcap demo: no provider configured (fake, openai or anthropic)")
    return chain


async def main(settings: DemoSettings | None = None) -> DemoRun:
    settings = settings or DemoSettings()
    async with AsyncExitStack() as stack:
        client = await running_temporal(settings.temporal())
        on_gateway = client is not None
        if client is None:
            print(f"No Temporal at {settings.temporal()}: starting a private stack.")
            server = await stack.enter_async_context(DevServer(ui=False))
            client = await Client.connect(server.target, data_converter=DATA_CONVERTER)
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            db_url = f"sqlite:///{Path(tmp) / 'demo.db'}"
        else:
            print(f"Running on the gateway's Temporal at {settings.temporal()}.")
            db_url = database_url(settings)
        if uses_fake_provider(settings):
            fake_url = settings.fake_url()
            if not (on_gateway and await answers(fake_url)):
                fake_url = (await stack.enter_async_context(FakeProvider.running())).base_url
            configs = RuncapSettings(fake_provider_url=fake_url).provider_configs()
        else:
            configs = RuncapSettings().provider_configs()
        print(f"Database {db_url}; providers {', '.join(c.name for c in configs)}")
        engine = make_engine(db_url)
        stack.callback(engine.dispose)
        await asyncio.to_thread(upgrade, engine)
        http = await stack.enter_async_context(make_http_client())
        worker = build_worker(
            client,
            engine=engine,
            http=http,
            providers=build_providers(configs, http),
            task_queue=DEMO_QUEUE,
            extra_workflows=[ExampleAgent],
            extra_activities=[run_tests],
        )
        task_id = f"demo-{uuid.uuid4().hex[:8]}"
        chain = demo_chain(configs, PriceBook())
        task = AgentTask(
            task_id, "fix the empty-input crash in the parser", DEMO_BUDGET_MICROS, chain
        )
        workflow_id = run_workflow_id(task_id)  # named as a run: the dashboard finds it
        async with worker:
            report: AgentReport = await client.execute_workflow(
                ExampleAgent.run, task, id=workflow_id, task_queue=DEMO_QUEUE
            )
    print_report(report)
    print_where(settings, task_id, workflow_id, on_gateway)
    return DemoRun(report, workflow_id, on_gateway)


def print_report(report: AgentReport) -> None:
    verdict = "passed" if report.passed else "still failing"
    print(f"\nTask {report.task_id}: tests {verdict} after {report.iterations} edit(s)")
    print(f"{'step':<22}{'calls':>6}{'tokens in':>11}{'tokens out':>11}{'cost (USD)':>14}")
    for step, row in sorted(report.by_step.items()):
        print(
            f"{step:<22}{row.calls:>6}{row.input_tokens:>11}{row.output_tokens:>11}"
            f"{micros_to_usd(row.cost_micros):>14}"
        )
    print(f"{'total':<50}{micros_to_usd(report.spent_micros):>14}")


def print_where(settings: DemoSettings, run_id: str, workflow_id: str, on_gateway: bool) -> None:
    if not on_gateway:
        print("\nThe private stack is gone with its run; start `make run` first to keep it.")
        return
    ui = settings.temporal_ui_url or f"http://127.0.0.1:{settings.temporal_ui_port}"
    namespace = settings.temporal().namespace
    api = f"http://{settings.api_host}:{settings.api_port}"
    print(f"\n  Temporal UI  {ui.rstrip('/')}/namespaces/{namespace}/workflows/{workflow_id}")
    print(f"  Dashboard    {api}/ui/runs/{run_id}")
    print(f"  Spend        {api}/admin/spend?group_by=step&tag=task:{run_id}  (admin key)")


if __name__ == "__main__":
    asyncio.run(main())
