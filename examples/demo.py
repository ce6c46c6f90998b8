"""``make demo``: an agent written as a workflow fixes a bug against the fake provider.

Everything runs on this machine: an in-memory Temporal dev server, the fake provider, the worker.
The agent plans, edits, runs the tests, reads the failure and edits again; every model call goes
through the budget core, and the demo prints what each step cost.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from temporalio.client import Client

from db.engine import make_engine
from db.migrate import upgrade
from examples.agent import AgentReport, AgentTask, ExampleAgent
from examples.suite import run_tests
from fake_provider import FakeProvider
from providers.base import ProviderConfig
from providers.pricing import PriceBook, micros_to_usd
from providers.registry import build_providers, make_http_client
from worker.app import build_worker
from worker.devserver import DevServer
from workflows.contracts import Target

DEMO_QUEUE = "runcap-demo"


async def main() -> AgentReport:
    prices = PriceBook()
    chain = [
        Target("fake", "fake-large", "openai", prices.price_of("fake-large")),
        Target("fake", "fake-small", "openai", prices.price_of("fake-small")),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'demo.db'}")
        upgrade(engine)
        async with (
            DevServer(ui=False) as server,
            FakeProvider.running() as fake,
            make_http_client() as http,
        ):
            print(f"Temporal dev server on {server.target}, fake provider on {fake.base_url}")
            client = await Client.connect(server.target)
            providers = build_providers(
                [ProviderConfig("fake", "openai", f"{fake.base_url}/v1")], http
            )
            worker = build_worker(
                client,
                engine=engine,
                http=http,
                providers=providers,
                task_queue=DEMO_QUEUE,
                extra_workflows=[ExampleAgent],
                extra_activities=[run_tests],
            )
            async with worker:
                task = AgentTask("demo-1", "fix the empty-input crash in the parser", 50_000, chain)
                report: AgentReport = await client.execute_workflow(
                    ExampleAgent.run, task, id="agent-demo-1", task_queue=DEMO_QUEUE
                )
        engine.dispose()
    print_report(report)
    return report


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


if __name__ == "__main__":
    asyncio.run(main())
