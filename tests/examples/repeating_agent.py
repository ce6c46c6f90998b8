"""A test agent written as a workflow that sends the same request again and again: the loop
guard's subject (the example agent's conversation grows, so it never repeats itself)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.agent_budget import AgentBudget, call_model
    from workflows.contracts import PeriodBudget, Target
    from workflows.run_contracts import RunSpend


@dataclass
class Repeat:
    run_id: str
    budget_micros: int
    chain: list[Target]
    times: int
    loop_max_repeats: int
    key_id: str = ""
    tags: list[str] = field(default_factory=list)
    periods: list[PeriodBudget] = field(default_factory=list)
    at_once: int = 1
    """Calls made together in each of the ``times`` rounds (each its own request)."""


@workflow.defn
class RepeatingAgent:
    """Sends one request ``times`` times, waits for a person's ``resume``, then sends it once
    more; returns what each call came to (``ok`` or its failure kind). With ``at_once``, makes
    that many different calls together in each round instead, and ends."""

    @workflow.init
    def __init__(self, task: Repeat) -> None:
        self.budget = AgentBudget(
            task.run_id,
            task.budget_micros,
            task.chain,
            key_id=task.key_id,
            tags=task.tags,
            periods=task.periods,
            agent="repeater",
            task_id=task.run_id,
            loop_max_repeats=task.loop_max_repeats,
        )
        self.resumed = False

    @workflow.run
    async def run(self, task: Repeat) -> list[str]:
        if task.at_once > 1:
            return await self.together(task)
        outcomes = [await self.ask() for _ in range(task.times)]
        await workflow.wait_condition(lambda: self.resumed)
        outcomes.append(await self.ask())
        self.budget.close()
        return outcomes

    async def together(self, task: Repeat) -> list[str]:
        outcomes: list[str] = []
        for _ in range(task.times):
            asked = [self.ask(f"Question {n}?") for n in range(task.at_once)]
            outcomes.extend(await asyncio.gather(*asked))
        self.budget.close()
        return outcomes

    async def ask(self, question: str = "Are the tests green yet?") -> str:
        body = {"messages": [{"role": "user", "content": question}]}
        try:
            await call_model(self.budget, body, step="poll", max_tokens=64)
        except ApplicationError as err:
            return err.type or "failed"
        return "ok"

    @workflow.query
    def spend(self) -> RunSpend:
        return self.budget.spend()

    @workflow.update
    def resume(self) -> RunSpend:
        self.resumed = True
        return self.budget.resume()
