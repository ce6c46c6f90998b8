"""What a run shows in the Temporal UI: its search attributes and its memo.

One place for the attribute keys, so the workflow, the caller that starts runs, and the dev
server's registered list (``worker.devserver.SEARCH_ATTRIBUTES``) cannot drift apart.
Search attributes are Doubles for money; the exact figures stay in integer micro-dollars.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)

from workflows.contracts import MICROS_PER_USD, StepSpend
from workflows.run_contracts import RunInput

RUN_COST = SearchAttributeKey.for_float("RunCost")
RUN_BUDGET = SearchAttributeKey.for_float("RunBudget")
RUN_CALLS = SearchAttributeKey.for_int("RunCalls")
RUN_STATUS = SearchAttributeKey.for_keyword("RunStatus")
AGENT_NAME = SearchAttributeKey.for_keyword("AgentName")
TASK_ID = SearchAttributeKey.for_keyword("TaskId")
RUN_TAGS = SearchAttributeKey.for_keyword_list("RunTags")
KEY_ID = SearchAttributeKey.for_keyword("KeyId")
MAX_TAGS_IN_SEARCH = 32


def usd(micros: int) -> float:
    return micros / MICROS_PER_USD


def _identity(run: RunInput) -> list[SearchAttributePair[Any]]:
    pairs: list[SearchAttributePair[Any]] = []
    for key, value in ((AGENT_NAME, run.agent), (TASK_ID, run.task_id), (KEY_ID, run.key_id)):
        if value:
            pairs.append(SearchAttributePair(key, value))
    if run.tags:
        pairs.append(SearchAttributePair(RUN_TAGS, run.tags[:MAX_TAGS_IN_SEARCH]))
    return pairs


def initial_search_attributes(run: RunInput) -> TypedSearchAttributes:
    """Set at start, so a run is findable by key, task or agent before its first flush."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(RUN_BUDGET, usd(run.budget_micros)),
            SearchAttributePair(RUN_STATUS, "open"),
            *_identity(run),
        ]
    )


def search_attribute_updates(
    run: RunInput, *, spent_micros: int, budget_micros: int, calls: int, status: str
) -> list[SearchAttributeUpdate[Any]]:
    """The run's figures now; identity is included for runs started without it."""
    figures: list[SearchAttributeUpdate[Any]] = [
        RUN_COST.value_set(usd(spent_micros)),
        RUN_BUDGET.value_set(usd(budget_micros)),
        RUN_CALLS.value_set(calls),
        RUN_STATUS.value_set(status),
    ]
    return [*figures, *(pair.key.value_set(pair.value) for pair in _identity(run))]


def memo(by_step: Mapping[str, StepSpend], spent_micros: int) -> dict[str, Any]:
    """The per-step breakdown the UI shows beside the attributes, in micro-dollars."""
    return {
        "by_step": {step: row.cost_micros for step, row in by_step.items()},
        "spent": spent_micros,
    }
