"""The pure budget core, on its own: no Temporal, no clock, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows.budget import (
    Budget,
    BudgetExceeded,
    Plan,
    cost_micros,
    reservation_micros,
    step_of,
)
from workflows.contracts import (
    Price,
    Target,
    Usage,
)
from workflows.legacy.contracts import RunState

SMALL = Target("fake", "fake-small", "openai", Price(input=500_000, output=1_500_000))
LARGE = Target("fake", "fake-large", "openai", Price(5_000_000, 15_000_000, 500_000, 6_250_000))


def test_cost_rounds_up_once() -> None:
    """A call costs its exact token price, rounded up to the next micro-dollar once."""
    usage = Usage(input_tokens=1000, output_tokens=333)
    # 1000 * 0.5 + 333 * 1.5 = 999.5 micro-dollars -> 1000
    assert cost_micros(SMALL.price, usage) == 1000


def test_cached_tokens_are_priced_at_their_own_rates() -> None:
    """Cache reads and writes are billed at their own prices, not the input price."""
    usage = Usage(input_tokens=0, cached_input_tokens=1_000_000, cache_write_tokens=1_000_000)
    assert cost_micros(LARGE.price, usage) == 500_000 + 6_250_000


def test_reservation_takes_the_dearest_target_and_input_rate() -> None:
    """Any target may serve, and input may all be cache writes: reserve for the worst."""
    assert (
        reservation_micros([SMALL, LARGE], 1000, 100)
        == (1000 * 6_250_000 + 100 * 15_000_000) // 1_000_000
    )


def test_plan_clamps_max_tokens_to_what_is_left() -> None:
    """A call the budget cannot fully cover is shrunk rather than refused or overshot."""
    budget = Budget(RunState(budget_micros=1_000))
    plan = budget.plan([SMALL], input_tokens=100, max_tokens=10_000, min_output_tokens=16)
    assert plan.max_tokens == (1_000 * 1_000_000 - 100 * 500_000) // 1_500_000
    assert plan.reserved_micros <= 1_000


def test_plan_refuses_below_the_useful_minimum() -> None:
    """When not even ``min_output_tokens`` fit, the call is refused with the figures."""
    budget = Budget(RunState(budget_micros=10))
    with pytest.raises(BudgetExceeded) as info:
        budget.plan([LARGE], input_tokens=100, max_tokens=1000, min_output_tokens=16)
    assert info.value.remaining_micros == 10


def test_settle_releases_the_difference_and_counts_overruns() -> None:
    """Settling under the hold frees the rest; settling over it is an overrun, counted."""
    budget = Budget(RunState(budget_micros=10_000))
    budget.reserve("a", Plan(100, 5_000))
    budget.reserve("b", Plan(100, 1_000))
    assert budget.remaining_micros == 4_000
    assert budget.settle("a", 3_000, Usage(1, 2), ["step:edit"], "m") == 0
    assert budget.settle("b", 1_500, Usage(1, 2), [], "m") == 500
    assert budget.state.spent_micros == 4_500
    assert budget.state.overruns == 1 and budget.state.overrun_micros == 500
    assert budget.state.by_step["step:edit"].cost_micros == 3_000
    assert budget.reserved_micros == 0


def test_reserve_refuses_past_the_cap() -> None:
    """A reservation that would pass the cap is refused and holds nothing."""
    budget = Budget(RunState(budget_micros=100))
    budget.reserve("a", Plan(1, 80))
    with pytest.raises(BudgetExceeded):
        budget.reserve("b", Plan(1, 30))
    assert budget.reserved_micros == 80


def test_thresholds_fire_once() -> None:
    """50/80/100% alerts fire once each, however many settles cross them."""
    budget = Budget(RunState(budget_micros=100))
    budget.state.spent_micros = 85
    assert budget.crossed_thresholds() == [50, 80]
    assert budget.crossed_thresholds() == []
    budget.state.spent_micros = 100
    assert budget.crossed_thresholds() == [100]


def test_step_of_reads_the_step_tag() -> None:
    """The per-step breakdown is keyed by the call's ``step:`` tag."""
    assert step_of(["agent:x", "step:edit"]) == "step:edit"
    assert step_of([]) == "(none)"


ops = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "settle", "release"]),
        st.integers(0, 30),
        st.integers(1, 5_000),
        st.integers(0, 100),
    ),
    max_size=200,
)


@given(cap=st.integers(1, 200_000), steps=ops)
def test_cap_holds_for_any_interleaving(cap: int, steps: list[tuple[str, int, int, int]]) -> None:
    """For any interleaving where each settle is at most its hold, spent + reserved <= cap."""
    budget = Budget(RunState(budget_micros=cap))
    for op, call, max_tokens, percent in steps:
        call_id = f"c{call}"
        if op == "reserve" and call_id not in budget.state.open_calls:
            try:
                plan = budget.plan([SMALL, LARGE], 50, max_tokens, 1)
                budget.reserve(call_id, plan)
            except BudgetExceeded:
                pass
        elif op == "settle" and call_id in budget.state.open_calls:
            held = budget.held(call_id)
            budget.settle(call_id, held * percent // 100, Usage(), [], "m")
        elif op == "release":
            budget.release(call_id)
        assert budget.state.spent_micros + budget.reserved_micros <= cap
        assert budget.remaining_micros >= 0
    assert budget.state.overruns == 0
