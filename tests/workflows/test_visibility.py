"""The run's search attributes are the ones the dev server and docker-compose register."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

from worker.devserver import SEARCH_ATTRIBUTES
from workflows import visibility
from workflows.run_contracts import RunInput

KINDS = {"DOUBLE": "Double", "INT": "Int", "KEYWORD": "Keyword", "KEYWORD_LIST": "KeywordList"}


def test_every_attribute_the_workflow_writes_is_registered() -> None:
    """A key the server does not know would fail the workflow task that upserts it."""
    keys = [v for v in vars(visibility).values() if isinstance(v, SearchAttributeKey)]
    assert {
        k.name: KINDS[k.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_")] for k in keys
    } == dict(SEARCH_ATTRIBUTES)


def test_updates_carry_identity_and_exact_figures() -> None:
    """Cost and budget in USD from micro-dollars; identity only when the run has it."""
    run = RunInput(run_id="r", budget_micros=2_500_000, key_id="key_1", tags=["task:9"])
    updates = visibility.search_attribute_updates(
        run, spent_micros=1_234_567, budget_micros=2_500_000, calls=3, status="open"
    )
    values = {u.key.name: u.value for u in updates}
    assert values == {
        "RunCost": 1.234567,
        "RunBudget": 2.5,
        "RunCalls": 3,
        "RunStatus": "open",
        "KeyId": "key_1",
        "RunTags": ["task:9"],
    }
