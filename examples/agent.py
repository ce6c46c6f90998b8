"""An example coding agent written as a workflow: plan, edit, test, read the failure, edit again.

It shows the Temporal-native path: the agent keeps its conversation in its own state and makes
every model call through the same budget core as ``AgentRun`` (``workflows.chain``), so its
cap, fallback and per-step costs behave exactly like a gateway run's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.direct import DirectAttempt, DirectOutcome
    from workflows.budget import Budget, estimate_input_tokens
    from workflows.chain import ATTEMPT_RETRY, call_with_budget
    from workflows.contracts import (
        AttemptInput,
        AttemptOutcome,
        CallRequest,
        LedgerRow,
        RunSpend,
        RunState,
        StepSpend,
        Target,
    )


@dataclass
class AgentTask:
    task_id: str
    goal: str
    budget_micros: int
    chain: list[Target]
    max_tokens: int = 256
    max_iterations: int = 4


@dataclass
class AgentReport:
    task_id: str
    passed: bool
    iterations: int
    spent_micros: int
    by_step: dict[str, StepSpend] = field(default_factory=dict)
    ledger: list[LedgerRow] = field(default_factory=list)


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
        self.budget = Budget(RunState(budget_micros=task.budget_micros))
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are a careful coding agent."}
        ]
        self.ledger: list[LedgerRow] = []
        self.calls = 0

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
        return AgentReport(
            task.task_id,
            passed,
            iterations,
            self.budget.state.spent_micros,
            self.budget.state.by_step,
            self.ledger,
        )

    async def ask(self, step: str, prompt: str) -> str:
        """One model call through the budget core; the conversation stays in this workflow."""
        self.messages.append({"role": "user", "content": prompt})
        self.calls += 1
        body = {"messages": list(self.messages)}
        answer: dict[str, Any] = {}

        async def attempt(inp: AttemptInput) -> AttemptOutcome:
            out = await workflow.execute_activity(
                "complete_call",
                DirectAttempt(body, "openai", inp.target, inp.max_tokens),
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=ATTEMPT_RETRY,
                result_type=DirectOutcome,
            )
            answer.update(out.body)
            return AttemptOutcome(out.usage)

        request = CallRequest(
            call_id=f"{self.task.task_id}-{self.calls}",
            chain=self.task.chain,
            input_tokens=estimate_input_tokens(body),
            max_tokens=self.task.max_tokens,
            task_queue="",
            tags=["agent:example", f"task:{self.task.task_id}", f"step:{step}"],
        )
        await call_with_budget(
            self.budget,
            request,
            attempt,
            run_id=self.task.task_id,
            key_id="",
            min_output_tokens=16,
            record=self.ledger.append,
        )
        text = str(answer.get("choices", [{}])[0].get("message", {}).get("content") or "")
        self.messages.append({"role": "assistant", "content": text})
        return text

    @workflow.query
    def spend(self) -> RunSpend:
        return self.budget.report(self.task.task_id)
