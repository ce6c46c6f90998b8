"""The run's books, pure: overruns contained, the loop guard, refusals that name their cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError

from workflows import errors
from workflows.budget import reservation_micros
from workflows.contracts import (
    PeriodBudget,
    Price,
    Target,
    Usage,
)
from workflows.legacy.contracts import (
    Advance,
    Lease,
    ReserveRequest,
    RunState,
    Settlement,
)
from workflows.legacy.run_book import RunBook
from workflows.run_contracts import RunInput

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CHEAP = Target("fake", "fake-small", "openai", Price(500_000, 1_500_000, 500_000, 500_000))
OTHER = Target("fake", "fake-large", "openai", Price(5_000_000, 15_000_000, 500_000, 6_250_000))


def book(budget: int = 1_000_000, **run: object) -> RunBook:
    spec = RunInput(run_id="r1", budget_micros=budget, key_id="k1", **run)  # type: ignore[arg-type]
    return RunBook(spec, RunState(budget_micros=budget, periods=list(spec.periods)))


def ask(call_id: str, chain: list[Target], max_tokens: int = 100, fp: str = "") -> ReserveRequest:
    return ReserveRequest(call_id, "caller-1", chain, 50, max_tokens, fingerprint=fp)


def take(runs: RunBook, req: ReserveRequest, now: datetime = NOW) -> None:
    runs.admit(req, now, draining=False)
    runs.check_loop(req, now)
    runs.reserve(req, now)


def refusal_kind(runs: RunBook, req: ReserveRequest, now: datetime = NOW) -> str:
    with pytest.raises(ApplicationError) as info:
        take(runs, req, now)
    return info.value.type or ""


def test_an_overrun_is_charged_closes_its_target_and_alerts_once() -> None:
    """A provider that returns 3x max_tokens: charged in full, the target takes no more calls
    of this run, one overrun alert; another target still serves; resume reopens it."""
    runs = book()
    take(runs, ask("a", [CHEAP]))
    take(runs, ask("b", [CHEAP]))
    held = runs.state.open_calls["a"].reserved_micros
    three_x = Settlement("a", "ok", CHEAP, Usage(50, 300))
    runs.settle(three_x, NOW)
    assert runs.state.spent_micros > held and runs.state.overruns == 1
    runs.settle(Settlement("b", "ok", CHEAP, Usage(50, 300)), NOW)  # in flight already
    assert refusal_kind(runs, ask("c", [CHEAP])) == errors.TARGET_BLOCKED
    take(runs, ask("d", [CHEAP, OTHER]))  # the chain falls to a target still open
    assert runs.state.open_calls["d"].chain == [OTHER]
    alerts = [a for a in runs.state.pending_alerts if a.kind == "overrun"]
    assert len(alerts) == 1 and "fake/fake-small" in alerts[0].detail
    runs.resume()
    take(runs, ask("e", [CHEAP]))
    # From now on the target's reservations assume it returns 3x what is asked.
    assert runs.state.open_calls["e"].reserved_micros == reservation_micros([CHEAP], 50, 300)


def test_the_sixth_identical_request_pauses_the_run() -> None:
    """With N=5, five identical requests pass, the sixth is refused as a loop and the run pauses;
    other requests pass until then; resume reopens it."""
    runs = book(loop_max_repeats=5, loop_window_seconds=60)
    for n in range(5):
        take(runs, ask(f"same-{n}", [CHEAP], fp="f1"), NOW + timedelta(seconds=n))
        take(runs, ask(f"other-{n}", [CHEAP], fp=f"f{n + 2}"), NOW + timedelta(seconds=n))
    assert refusal_kind(runs, ask("same-5", [CHEAP], fp="f1"), NOW + timedelta(seconds=6)) == (
        errors.LOOP_DETECTED
    )
    assert runs.state.status == "looping"
    assert refusal_kind(runs, ask("new", [CHEAP], fp="f9")) == errors.LOOP_DETECTED
    assert [a.kind for a in runs.state.pending_alerts] == ["loop"]
    runs.resume()
    take(runs, ask("after", [CHEAP], fp="f1"), NOW + timedelta(seconds=7))


def test_repeats_outside_the_window_are_not_a_loop() -> None:
    """The same request, but spread wider than the window, is an agent at work, not a loop."""
    runs = book(loop_max_repeats=2, loop_window_seconds=10)
    for n in range(6):
        take(runs, ask(f"slow-{n}", [CHEAP], fp="f1"), NOW + timedelta(seconds=11 * n))
    assert runs.state.status == "open"


def test_a_period_refusal_names_the_period_and_when_it_resets() -> None:
    """A run with room in its own budget but a spent day lease is refused by the day cap."""
    runs = book(budget=1_000_000, periods=[PeriodBudget("day", 500)])
    runs.state.leases["day"] = Lease("day", "2026-11-28", "2026-11-29T00:00:00+00:00", 10)
    with pytest.raises(ApplicationError) as info:
        take(runs, ask("x", [CHEAP], max_tokens=1_000))
    refusal = info.value.details[0]["refusal"]
    assert refusal["cap"] == "day"
    assert refusal["resets_at"] == "2026-11-29T00:00:00+00:00"


def test_a_reservation_counts_against_the_run_and_its_period_lease() -> None:
    """With a day lease of one call's worth, the first call holds it and the second is refused
    by the day, while the run's own budget still has room."""
    runs = book(budget=1_000_000, periods=[PeriodBudget("day", 1_000_000)])
    need = reservation_micros([CHEAP], 50, 100)
    (draw,) = runs.draws(ask("a", [CHEAP]), NOW)
    runs.leases.granted(draw, need)
    take(runs, ask("a", [CHEAP]))
    assert runs.state.open_calls["a"].leases == ["day:2026-11-28"]
    assert runs.draws(ask("b", [CHEAP]), NOW)  # the second call must draw first
    with pytest.raises(ApplicationError) as info:
        take(runs, ask("b", [CHEAP]))
    assert info.value.details[0]["refusal"]["cap"] == "day"


# ---- advances ------------------------------------------------------------------------------


def lend(runs: RunBook, call_id: str = "a", caller: str = "caller-1") -> Advance | None:
    req = ReserveRequest(call_id, caller, [CHEAP], 50, 100, want_advance=True)
    take(runs, req)
    return runs.advance(req, runs.state.open_calls[call_id], NOW, f"adv-{call_id}")


def under(advance: Advance, n: int, cost_tokens: int = 40, status: str = "ok") -> Settlement:
    per_call = reservation_micros([CHEAP], 50, 100)
    return Settlement(
        f"{advance.advance_id}/{n}",
        status,  # type: ignore[arg-type]
        CHEAP,
        Usage(50, cost_tokens),
        advance_id=advance.advance_id,
        reserved_micros=per_call,
        max_tokens=100,
        tags=["step:edit"],
    )


def test_an_advance_is_whole_calls_a_quarter_of_what_is_left_at_most() -> None:
    """Far from the cap: eight calls like the asking one. Closer: what a quarter of the rest
    affords. Near it: none, and the run tells callers to hand theirs back."""
    per_call = reservation_micros([CHEAP], 50, 100)
    far = lend(book(budget=per_call * 1000))
    assert far is not None and far.micros == 8 * per_call
    closer = lend(book(budget=per_call * 17))  # 16 left: a quarter is 4 calls
    assert closer is not None and closer.micros == 4 * per_call
    near = book(budget=per_call * 8)
    assert lend(near) is None and not near.advances_welcome()


def test_no_advance_under_the_loop_guard_a_parallel_limit_or_for_a_third_time() -> None:
    per_call = reservation_micros([CHEAP], 50, 100)
    assert lend(book(budget=per_call * 1000, loop_max_repeats=3)) is None
    assert lend(book(budget=per_call * 1000, max_parallel_calls=4)) is None
    runs = book(budget=per_call * 1000)
    assert lend(runs, "a") is not None
    assert lend(runs, "b") is not None  # a new one while older ones finish or go back
    assert lend(runs, "c") is not None
    assert lend(runs, "d") is None  # three per caller until it hands one back
    assert lend(runs, "e", caller="caller-2") is not None


def test_a_caller_running_many_calls_at_once_may_ask_for_a_bigger_advance() -> None:
    per_call = reservation_micros([CHEAP], 50, 100)
    runs = book(budget=per_call * 10_000)
    req = ReserveRequest("a", "caller-1", [CHEAP], 50, 100, want_advance=True, advance_calls=40)
    take(runs, req)
    advance = runs.advance(req, runs.state.open_calls["a"], NOW, "adv-a")
    assert advance is not None and advance.micros == 40 * per_call
    huge = ReserveRequest("b", "caller-2", [CHEAP], 50, 100, want_advance=True, advance_calls=999)
    take(runs, huge)
    capped = runs.advance(huge, runs.state.open_calls["b"], NOW, "adv-b")
    assert capped is not None and capped.micros == 64 * per_call


def test_calls_under_an_advance_are_charged_once_and_the_rest_goes_back_on_retire() -> None:
    """Each call's cost moves from the advance to spend, once, however often its settlement
    arrives; retiring releases the rest; spent + reserved never passes the cap."""
    per_call = reservation_micros([CHEAP], 50, 100)
    runs = book(budget=per_call * 1000)
    advance = lend(runs)
    assert advance is not None
    runs.settle(Settlement("a", "ok", CHEAP, Usage(50, 40)), NOW)
    spent = runs.state.spent_micros
    for n in (1, 2, 2, 1):  # a batch delivered twice
        runs.settle(under(advance, n), NOW)
    cost = reservation_micros([CHEAP], 50, 40)
    assert runs.state.spent_micros == spent + 2 * cost and runs.state.calls == 3
    assert runs.state.open_calls[advance.advance_id].reserved_micros == advance.micros - 2 * cost
    assert runs.state.by_step["step:edit"].calls == 2
    assert runs.budget.remaining_micros + runs.state.spent_micros + runs.budget.reserved_micros == (
        runs.state.budget_micros
    )
    runs.retire(advance.advance_id)
    assert runs.budget.reserved_micros == 0
    runs.settle(under(advance, 3), NOW)  # too late: the advance is gone, nothing charged
    assert runs.state.calls == 3


def test_a_silent_callers_advance_is_billed_what_it_did_not_report() -> None:
    """The caller went silent: what its recorded calls cost plus the unreported rest, once,
    as ``unknown``; never released as free."""
    per_call = reservation_micros([CHEAP], 50, 100)
    runs = book(budget=per_call * 1000)
    advance = lend(runs)
    assert advance is not None
    runs.settle(under(advance, 1), NOW)
    left = runs.state.open_calls[advance.advance_id].reserved_micros
    spent = runs.state.spent_micros
    later = NOW + timedelta(seconds=runs.run.caller_timeout_seconds + 1)
    assert advance.advance_id in runs.expired(later)
    runs.bill_unreported(advance.advance_id, later)
    assert runs.state.spent_micros == spent + left and runs.budget.reserved_micros == per_call
    (row,) = [r for r in runs.state.pending_ledger if r.call_id == advance.advance_id]
    assert (row.status, row.cost_micros) == ("unknown", left)
    runs.bill_unreported(advance.advance_id, later)  # once only
    assert runs.state.spent_micros == spent + left
