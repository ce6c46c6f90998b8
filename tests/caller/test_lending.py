"""Lending, the caller's side, against keepers' own pure books in this process (no Temporal).

Invariants checked: spent + held (all lines) never above any keeper's cap; what a borrower's
calls hold and spent unacknowledged never above what its keeper holds for it; a call refused
only when what is neither spent nor held by calls in flight cannot pay for it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caller.errors import CallFailed
from caller.lending import Lending
from caller.lines import (
    Ending,
    Hold,
    Keeper,
)
from caller.runs import keepers_of
from tests.caller.in_process import InProcessKeepers
from workflows import errors
from workflows.budget import reservation_micros
from workflows.contracts import PeriodBudget, Price, Target, Usage
from workflows.lending import lent_micros
from workflows.lending_contracts import CallNeed
from workflows.run_contracts import RunInput

SMALL = Target("fake", "fake-small", "openai", Price(input=1_000_000, output=2_000_000))
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
INPUT, MAX_TOKENS = 100, 100
PER_CALL = reservation_micros([SMALL], INPUT, MAX_TOKENS)  # 300 micro-dollars


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lending(keepers: InProcessKeepers, clock: Clock, name: str = "a") -> Lending:
    # The clock stands still here: a recall waits its tries out at once.
    return Lending(f"caller-{name}", keepers, journaled=True, clock=clock, recall_retry=0)


def need(max_tokens: int = MAX_TOKENS) -> CallNeed:
    return CallNeed(uuid.uuid4().hex, [SMALL], INPUT, max_tokens, min_output_tokens=16)


def run(budget: int, *, day: int = 0, name: str = "r") -> RunInput:
    periods = [PeriodBudget("day", day)] if day else []
    return RunInput(run_id=f"key.{name}", budget_micros=budget, key_id="key", periods=periods)


def end(lines: Lending, hold: Hold, cost: int) -> None:
    lines.ended(hold, Ending(cost, True, Usage(INPUT, 50), ["step:edit"], "fake-small", SMALL, 50))


def assert_exact(keepers: InProcessKeepers, *borrowers: Lending) -> None:
    """Every keeper within its cap; every borrower within what its keeper holds for it."""
    for keeper_id in [*keepers.runs, *keepers.periods]:
        books = keepers.books(keeper_id)
        assert books.spent_micros + lent_micros(books) <= books.cap_micros, keeper_id
        for borrower in borrowers:
            line = borrower.lines.get(keeper_id)
            held = books.lines.get(borrower.borrower)
            if line is not None and held is not None and line.sending is None:
                assert line.in_flight + line.unacked <= line.limit <= held.held_micros


async def test_a_sparse_run_asks_its_keeper_once_then_holds_in_memory() -> None:
    """Far from its cap a run's first call asks for room; its next calls find room in memory
    (the reports a few seconds apart top it up, off the calls' path)."""
    keepers, clock = InProcessKeepers(), Clock()
    borrower = lending(keepers, clock)
    the_run = run(1_000_000, day=5_000_000)
    for _ in range(30):
        hold = await borrower.reserve(keepers_of(the_run, NOW), need())
        end(borrower, hold, 200)
        clock.now += 2.0  # the provider answers and the agent thinks
        await borrower.tick_once()
        assert_exact(keepers, borrower)
    assert sum(keepers.needs.values()) == 2  # the run's first call, and the day's
    assert keepers.requests["run-key.r"] <= 31


async def test_reports_settle_spend_and_top_lines_up() -> None:
    """The keeper's spend equals what the calls cost once their report lands."""
    keepers, clock = InProcessKeepers(), Clock()
    borrower = lending(keepers, clock)
    the_run = run(1_000_000, day=5_000_000)
    for _ in range(7):
        end(borrower, await borrower.reserve(keepers_of(the_run, NOW), need()), 250)
    clock.now += 6.0  # past the report interval
    await borrower.tick_once()
    assert keepers.books("run-key.r").spent_micros == 7 * 250
    day = next(iter(keepers.periods))
    assert keepers.books(day).spent_micros == 7 * 250
    assert keepers.runs["run-key.r"].state.calls == 7
    assert_exact(keepers, borrower)


async def test_one_sequential_agent_is_refused_once_at_the_end() -> None:
    """On a small run cap, a sequential agent's calls pass until the next cannot fit, and the
    refusal comes only then: nothing is held but the money it spent."""
    keepers, clock = InProcessKeepers(), Clock()
    borrower = lending(keepers, clock)
    cap = 87 * PER_CALL // 3  # about 87 calls costing a third of their worst case
    the_run = run(cap)
    spent, refused = 0, 0
    for _ in range(200):
        try:
            hold = await borrower.reserve(keepers_of(the_run, NOW), need(max_tokens=MAX_TOKENS))
        except CallFailed as failed:
            assert failed.kind == errors.BUDGET_EXCEEDED
            refused += 1
            break
        end(borrower, hold, PER_CALL // 3)
        spent += PER_CALL // 3
        clock.now += 0.5
        await borrower.tick_once()
        assert_exact(keepers, borrower)
    assert refused == 1
    floor = reservation_micros([SMALL], INPUT, 16)
    assert cap - spent < floor  # not even the smallest answer fits: a true refusal
    assert keepers.books("run-key.r").spent_micros == spent


async def test_five_runs_share_a_day_cap_to_its_end() -> None:
    """Five agents, each its own run, share one key's day cap: the first refusal comes only
    when spent plus what calls in flight hold is within two worst cases of the cap."""
    keepers, clock = InProcessKeepers(), Clock()
    borrower = lending(keepers, clock)
    day_cap = 40 * PER_CALL
    runs = [run(10_000_000, day=day_cap, name=f"r{n}") for n in range(5)]
    refused_at: int | None = None
    holds: list[Hold] = []

    async def agent(the_run: RunInput) -> None:
        nonlocal refused_at
        while refused_at is None:
            try:
                hold = await borrower.reserve(keepers_of(the_run, NOW), need())
            except CallFailed as failed:
                assert failed.kind == errors.BUDGET_EXCEEDED
                day = keepers.books(next(iter(keepers.periods)))
                in_flight = sum(h.amount for h in holds)
                refused_at = day.spent_micros + in_flight
                return
            holds.append(hold)
            await asyncio.sleep(0)
            holds.remove(hold)
            end(borrower, hold, PER_CALL // 2)

    await asyncio.gather(*(agent(r) for r in runs))
    assert refused_at is not None and day_cap - refused_at < 2 * PER_CALL
    assert_exact(keepers, borrower)


async def test_a_need_recalls_room_another_process_holds() -> None:
    """Two processes share a run near its cap: one holds unused room; the other's call waits
    while it is handed back (the nudge), then passes, rather than being refused."""
    keepers, clock = InProcessKeepers(), Clock()
    first, second = lending(keepers, clock, "a"), lending(keepers, clock, "b")

    async def nudge(keeper_ids: object) -> None:
        assert isinstance(keeper_ids, list)
        for keeper_id in keeper_ids:
            await first.report(keeper_id, hand_back=True)

    second.nudge = nudge
    the_run = run(24 * PER_CALL)
    keeper = keepers_of(the_run, NOW)
    end(first, await first.reserve(keeper, need()), PER_CALL)  # first holds spare room now
    assert first.lines["run-key.r"].room >= PER_CALL
    books = keepers.books("run-key.r")
    # spend most of the cap through the first process, keeping its room unused
    books.spent_micros += books.cap_micros - books.spent_micros - lent_micros(books)
    hold = await second.reserve(keeper, need())
    assert hold.amount == PER_CALL
    assert_exact(keepers, first, second)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, PER_CALL)),
        min_size=1,
        max_size=60,
    ),
    st.integers(3 * PER_CALL, 60 * PER_CALL),
)
def test_spent_and_held_never_pass_a_cap(steps: list[tuple[int, int, int]], cap: int) -> None:
    """Three processes, four runs on one day cap, calls starting, ending and reporting in any
    order: no keeper ever has more spent and lent than its cap."""

    async def scenario() -> None:
        keepers, clock = InProcessKeepers(), Clock()
        borrowers = [lending(keepers, clock, str(n)) for n in range(3)]
        runs = [run(cap, day=2 * cap, name=f"r{n}") for n in range(4)]
        open_holds: list[tuple[Lending, Hold]] = []
        for who, which, cost in steps:
            borrower = borrowers[who]
            if cost % 3 == 0 and open_holds:
                owner, hold = open_holds.pop(0)
                end(owner, hold, min(cost, hold.amount))
            elif cost % 5 == 0:
                clock.now += 3.0
                await borrower.tick_once()
            else:
                try:
                    hold = await borrower.reserve(keepers_of(runs[which], NOW), need())
                    open_holds.append((borrower, hold))
                except CallFailed as failed:
                    assert failed.kind == errors.BUDGET_EXCEEDED
            assert_exact(keepers, *borrowers)

    asyncio.run(scenario())


@pytest.mark.parametrize("cost", [0, PER_CALL])
async def test_a_refused_call_holds_nothing(cost: int) -> None:
    """A call refused at one keeper gives back what it held at the others."""
    keepers, clock = InProcessKeepers(), Clock()
    borrower = lending(keepers, clock)
    the_run = run(10_000_000, day=3 * PER_CALL)
    holds = []
    with pytest.raises(CallFailed):
        for _ in range(10):
            holds.append(await borrower.reserve(keepers_of(the_run, NOW), need()))
    run_line = borrower.lines["run-key.r"]
    assert run_line.in_flight == sum(h.amount for h in holds)
    for hold in holds:
        end(borrower, hold, cost)
    assert run_line.in_flight == 0


async def test_a_keeper_name_without_start_is_not_open() -> None:
    """A call on a run id nobody started is refused as not open."""
    keepers, clock = InProcessKeepers(), Clock()
    borrower = lending(keepers, clock)
    with pytest.raises(CallFailed) as info:
        await borrower.reserve([Keeper("run-nobody", None)], need())
    assert info.value.kind == errors.RUN_NOT_OPEN
