"""Recorded histories of ``AgentRun`` and ``KeyBudget`` replay on today's code.

The histories under ``histories/`` were recorded from real runs on the dev server (calls,
settles, a period lease, an overrun, the loop guard), and ``example_agent.json`` from the example
agent written as a workflow before ``call_model`` drew on key periods and showed its figures;
``example_agent_controls.json`` and ``repeating_agent.json`` after (recorded by
tests/examples/test_agent_controls.py). A workflow change that would break a run already in
flight fails here: gate it with ``workflow.patched``. Re-record deliberately with
``RUNCAP_RECORD_HISTORIES=1 pytest tests/workflows/test_replay_histories.py
tests/examples/test_agent_controls.py``.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from caller import Caller, CallFailed, CallSpec, run_handle
from examples.agent import ExampleAgent
from fake_provider import FakeProvider
from tests.conftest import TargetFactory
from tests.examples.repeating_agent import RepeatingAgent
from tests.workflows.test_agent_run import BODY, spec
from workflows import errors
from workflows.agent_run import AgentRun
from workflows.budget import estimate_input_tokens, reservation_micros
from workflows.contracts import Extend, PeriodBudget
from workflows.converter import DATA_CONVERTER
from workflows.key_budget import KeyBudget
from workflows.key_contracts import key_budget_id
from workflows.periods import period_of
from workflows.run_contracts import RunInput

HISTORIES = Path(__file__).with_name("histories")
RECORD = os.environ.get("RUNCAP_RECORD_HISTORIES") == "1"


@pytest.mark.skipif(not RECORD, reason="records histories only when asked to")
async def test_record_lines_histories(
    caller: Caller,
    temporal_client: Client,
    fake: FakeProvider,
    target: TargetFactory,
) -> None:
    """A run that lends lines, and its key's day, through a caller: calls from its opening
    line, reports, an overrun closing a target, a refusal, a resume, spare room handed back,
    a close (only with RUNCAP_RECORD_HISTORIES=1). The histories from before lines
    (``agent_run.json``, ``agent_run_advances.json``, ``key_budget.json``) stay as recorded."""
    await fake.reset()
    small = target("fake-small")
    key_id = f"key_{uuid.uuid4().hex[:16]}"
    run = RunInput(
        run_id=f"replay-{uuid.uuid4().hex[:8]}",
        budget_micros=1_000_000,
        key_id=key_id,
        periods=[PeriodBudget("day", 1_000_000)],
    )
    for n in range(3):
        await caller.call(run, spec([small], tags=[f"step:s{n}"]))
    await caller.flush()
    await fake.script("fake-small", completion_tokens=500)  # an overrun
    await caller.call(run.run_id, spec([small], max_tokens=100))
    await fake.reset()
    with pytest.raises(CallFailed):
        await caller.call(run.run_id, spec([small]))  # the target is closed now
    await run_handle(temporal_client, run.run_id).execute_update(AgentRun.resume)
    await caller.flush()
    await caller.call(run.run_id, spec([small]))
    await caller.flush(hand_back=True)
    await run_handle(temporal_client, run.run_id).execute_update(AgentRun.close)
    await caller.flush(hand_back=True)
    await run_handle(temporal_client, run.run_id).result()
    HISTORIES.mkdir(exist_ok=True)
    history = await run_handle(temporal_client, run.run_id).fetch_history()
    (HISTORIES / "agent_run_lines.json").write_text(history.to_json())
    period, _ = period_of("day", datetime.now(UTC), "UTC")
    budget = temporal_client.get_workflow_handle(key_budget_id(key_id, "day", period))
    (HISTORIES / "key_budget_lines.json").write_text((await budget.fetch_history()).to_json())


@pytest.mark.skipif(not RECORD, reason="records histories only when asked to")
async def test_record_held_history(
    caller: Caller, temporal_client: Client, target: TargetFactory
) -> None:
    """A run that holds at its cap: a call, the call the cap refuses pausing the run (its
    alert), a refused call while paused, the approval, the next call, a close (only with
    RUNCAP_RECORD_HISTORIES=1)."""
    small = target("fake-small")
    run = RunInput(
        run_id=f"replay-held-{uuid.uuid4().hex[:8]}",
        budget_micros=2 * reservation_micros([small], estimate_input_tokens(BODY), 100),
        hold_at_cap=True,
    )
    await caller.call(run, spec([small]))
    await caller.flush()
    long = {"messages": [{"role": "user", "content": "x" * 20_000}]}  # more than the run has
    for _ in range(2):
        with pytest.raises(CallFailed) as info:
            await caller.call(run.run_id, CallSpec(long, "openai", [small], max_tokens=100))
        assert info.value.kind == errors.RUN_HELD
    handle = run_handle(temporal_client, run.run_id)
    await handle.execute_update(AgentRun.extend, Extend(by_micros=1_000_000))
    await caller.call(run.run_id, spec([small]))
    await caller.flush(hand_back=True)
    await handle.execute_update(AgentRun.close)
    await caller.flush(hand_back=True)
    await handle.result()
    history = await handle.fetch_history()
    (HISTORIES / "agent_run_held.json").write_text(history.to_json())


@pytest.mark.parametrize(
    "name",
    [
        "agent_run",
        "agent_run_advances",
        "key_budget",
        "agent_run_lines",
        "key_budget_lines",
        "agent_run_held",
        "example_agent",
        "example_agent_controls",
        "repeating_agent",
    ],
)
async def test_recorded_histories_replay(name: str) -> None:
    """Each recorded history replays without a nondeterminism error."""
    path = HISTORIES / f"{name}.json"
    history = WorkflowHistory.from_json(f"{name}-recorded", path.read_text())
    replayer = Replayer(
        workflows=[AgentRun, KeyBudget, ExampleAgent, RepeatingAgent],
        data_converter=DATA_CONVERTER,
    )
    await replayer.replay_workflow(history)
