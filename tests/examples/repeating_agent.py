"""A test agent written as a workflow that sends the same request again and again: the loop
guard's subject (the example agent's conversation grows, so it never repeats itself)."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.agent_budget import AgentBudget, call_model
    from workflows.contracts import Target
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


@workflow.defn
class RepeatingAgent:
    """Sends one request ``times`` times, waits for a person's ``resume``, then sends it once
    more; returns what each call came to (``ok`` or its failure kind)."""

    @workflow.init
    def __init__(self, task: Repeat) -> None:
        self.budget = AgentBudget(
            task.run_id,
            task.budget_micros,
            task.chain,
            key_id=task.key_id,
            tags=task.tags,
            agent="repeater",
            task_id=task.run_id,
            loop_max_repeats=task.loop_max_repeats,
        )
        self.resumed = False

    @workflow.run
    async def run(self, task: Repeat) -> list[str]:
        outcomes = [await self.ask() for _ in range(task.times)]
        await workflow.wait_condition(lambda: self.resumed)
        outcomes.append(await self.ask())
        self.budget.close()
        return outcomes

    async def ask(self) -> str:
        body = {"messages": [{"role": "user", "content": "Are the tests green yet?"}]}
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
