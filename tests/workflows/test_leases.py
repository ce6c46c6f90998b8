"""Period leases and calendar periods, pure: grant sizes, a run's lease account, rollover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from workflows.contracts import PeriodBudget
from workflows.legacy.contracts import (
    Lease,
    OpenCall,
    RunState,
)
from workflows.legacy.leases import SHARE, RunLeases, grant_size
from workflows.periods import period_of

NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DAY = PeriodBudget("day", 1_000_000)


def test_grants_are_whole_calls_far_from_the_cap_and_all_that_is_left_near_it() -> None:
    """Far from the cap: whole multiples of the call, at most a share of what is left. Near it:
    everything left, when the call's floor fits; else nothing."""
    assert grant_size(available=1_000_000, need=1_000, floor=100, want=8_000) == 8_000
    assert grant_size(available=10_000, need=1_000, floor=100, want=8_000) == 2_000
    assert grant_size(available=1_500, need=1_000, floor=100, want=8_000) == 1_000
    assert grant_size(available=700, need=1_000, floor=100, want=8_000) == 700
    assert grant_size(available=50, need=1_000, floor=100, want=8_000) == 0


@given(
    cap=st.integers(1, 10**7),
    need=st.integers(1, 10**5),
    runs=st.integers(1, 40),
    rounds=st.integers(1, 30),
)
def test_identical_calls_are_refused_only_when_the_period_cannot_pay(
    cap: int, need: int, runs: int, rounds: int
) -> None:
    """Runs drawing for identical calls, in any number: leased never passes the cap, no
    remainder is stranded in a run, and a call is refused only when the period has less than
    it needs left."""
    leased = served = 0
    held = [0] * runs
    for _ in range(rounds):
        for run in range(runs):
            if held[run] < need:
                got = grant_size(cap - leased, need - held[run], need - held[run], 8 * need)
                leased += got
                held[run] += got
                assert leased <= cap
                assert held[run] % need == 0  # whole calls only
            if held[run] >= need:
                held[run] -= need
                served += 1
            else:
                assert cap - leased < need  # refused only when the period could not pay
    assert served * need + sum(held) == leased <= cap


def test_a_share_keeps_money_for_other_runs() -> None:
    """A run far from the cap takes at most a quarter of what is left (beyond one call)."""
    got = grant_size(available=100_000, need=1_000, floor=1, want=10**9)
    assert got <= 100_000 // SHARE


def test_periods_follow_the_keys_calendar_across_dst() -> None:
    """A day ends at the next local midnight, 23 h later on a DST start; months end on the 1st."""
    period, ends = period_of("day", datetime(2026, 3, 8, 12, tzinfo=UTC), "America/New_York")
    assert (period, ends) == ("2026-03-08", datetime(2026, 3, 9, 4, tzinfo=UTC))
    period, ends = period_of("day", datetime(2026, 11, 29, 3, tzinfo=UTC), "America/New_York")
    assert period == "2026-11-28"  # still the 28th in New York
    period, ends = period_of("month", datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "Europe/Paris")
    assert (period, ends) == ("2027-01", datetime(2027, 1, 31, 23, tzinfo=UTC))


def _call(reserved: int, leases: list[str]) -> OpenCall:
    return OpenCall("c", reserved, 10, [], [], "", "", "", leases)


def test_a_run_draws_then_spends_from_its_lease() -> None:
    """A run with a day budget draws before its first call, and not again while room remains."""
    state = RunState(budget_micros=10**9, periods=[DAY])
    leases = RunLeases(state)
    (draw,) = leases.draws(NOON, need=1_000, floor=100)
    assert (draw.period, draw.need_micros) == ("2026-11-28", 1_000)
    assert draw.want_micros >= 1_000
    leases.granted(draw, 3_000)
    assert leases.draws(NOON, need=1_000, floor=100) == []
    state.open_calls["a"] = _call(1_000, leases.lease_ids(NOON))
    state.open_calls["b"] = _call(1_000, leases.lease_ids(NOON))
    assert leases.limit(NOON)[0] == 1_000
    leases.charge(state.open_calls.pop("a"), 600)
    assert leases.limit(NOON)[0] == 3_000 - 600 - 1_000


def test_across_midnight_a_lease_keeps_its_period_and_the_next_call_draws_the_new_one() -> None:
    """Money counts in the period its lease was taken in: yesterday's lease keeps yesterday's
    spend (calls still open under it settle there), and today's calls draw from today."""
    state = RunState(budget_micros=10**9, periods=[DAY])
    leases = RunLeases(state)
    (draw,) = leases.draws(NOON, need=1_000, floor=100)
    leases.granted(draw, 5_000)
    state.open_calls["late"] = _call(1_000, leases.lease_ids(NOON))
    tomorrow = NOON + timedelta(days=1)
    (next_day,) = leases.draws(tomorrow, need=1_000, floor=100)
    assert next_day.period == "2026-11-29"
    leases.granted(next_day, 2_000)
    yesterday = state.retired_leases[0]
    assert yesterday.period == "2026-11-28" and state.leases["day"].period == "2026-11-29"
    assert leases.lease_ids(tomorrow) == ["day:2026-11-29"]
    # The call opened yesterday settles into yesterday's lease.
    leases.charge(state.open_calls.pop("late"), 800)
    assert yesterday.spent_micros == 800 and state.leases["day"].spent_micros == 0
    (back,) = [b for b in leases.give_backs(idle=False, closing=False) if b.lease is yesterday]
    assert (back.spent_micros, back.unused_micros) == (800, 4_200)
    leases.given_back(back)
    assert state.retired_leases == []


def test_an_idle_run_gives_back_what_it_does_not_use() -> None:
    """Idle: spend is reported and unused money goes back; what open calls hold stays."""
    state = RunState(budget_micros=10**9, periods=[DAY])
    leases = RunLeases(state)
    lease = Lease("day", "2026-11-28", "", granted_micros=5_000, spent_micros=1_000)
    state.leases["day"] = lease
    state.open_calls["x"] = _call(500, [lease.id])
    (back,) = leases.give_backs(idle=True, closing=False)
    assert (back.spent_micros, back.unused_micros) == (1_000, 3_500)
    leases.given_back(back)
    assert (lease.granted_micros, lease.spent_micros) == (500, 0)
    assert leases.give_backs(idle=True, closing=False) == []
