"""An example coding agent written as a workflow: plan, edit, test, read the failure, edit again.

It shows the Temporal-native path: the agent keeps its conversation and its ``AgentBudget`` in
its own state and makes every model call with ``call_model``, so its cap, its key's period caps,
fallback, ledger, per-step costs, alerts, loop guard and figures in the Temporal UI and the
dashboard behave exactly like a gateway run's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.agent_budget import AgentBudget, call_model
    from workflows.contracts import (
        PeriodBudget,
        StepSpend,
        Target,
    )
    from workflows.run_contracts import RunSpend


@dataclass
class AgentTask:
    task_id: str
    goal: str
    budget_micros: int
    chain: list[Target]
    max_tokens: int = 256
    max_iterations: int = 4
    key_id: str = ""
    """The key the agent spends from (its ledger rows name it), and that key's day, month and
    total caps (``KeyPolicy.periods()``): each call needs room at each, as the gateway's do."""
    periods: list[PeriodBudget] = field(default_factory=list)
    loop_max_repeats: int = 0


@dataclass
class AgentReport:
    task_id: str
    passed: bool
    iterations: int
    spent_micros: int
    calls: int
    by_step: dict[str, StepSpend] = field(default_factory=dict)


@dataclass
class SuiteRun:
    iteration: int
    patch: str


@dataclass
class SuiteReport:
    passed: bool
    output: str


@workflow.defn
class ExampleAgent:
    """A deterministic toy loop; the model calls and their money are real."""

    @workflow.init
    def __init__(self, task: AgentTask) -> None:
        self.task = task
        self.budget = AgentBudget(
            task.task_id,
            task.budget_micros,
            task.chain,
            key_id=task.key_id,
            tags=["agent:example", f"task:{task.task_id}"],
            periods=task.periods,
            agent="example",
            task_id=task.task_id,
            loop_max_repeats=task.loop_max_repeats,
        )
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are a careful coding agent."}
        ]

    @workflow.run
    async def run(self, task: AgentTask) -> AgentReport:
        await self.ask("plan", f"Plan how to: {task.goal}")
        passed, iterations = False, 0
        while not passed and iterations < task.max_iterations:
            iterations += 1
            patch = await self.ask("edit", "Write the patch.")
            report = await workflow.execute_activity(
                "run_tests",
                SuiteRun(iterations, patch),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
                result_type=SuiteReport,
            )
            passed = report.passed
            if not passed:
                await self.ask("read-failure", f"The tests failed:\n{report.output}\nWhy?")
        spend = self.budget.close()
        return AgentReport(
            task.task_id, passed, iterations, spend.spent_micros, spend.calls, spend.by_step
        )

    async def ask(self, step: str, prompt: str) -> str:
        """One model call through the agent's budget; the conversation stays in this workflow."""
        self.messages.append({"role": "user", "content": prompt})
        body = {"messages": list(self.messages)}
        reply = await call_model(self.budget, body, step=step, max_tokens=self.task.max_tokens)
        self.messages.append({"role": "assistant", "content": reply.text})
        return reply.text

    @workflow.query
    def spend(self) -> RunSpend:
        """The live figures: the dashboard's run page and runs list ask this."""
        return self.budget.spend()

    @workflow.update
    def resume(self) -> RunSpend:
        """Take calls again after the loop guard paused the agent (``POST
        /admin/runs/{run_id}/resume`` sends it: the workflow's id is ``run-{run_id}``)."""
        return self.budget.resume()
