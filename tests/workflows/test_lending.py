"""The lending model's keeper rules, pure (``workflows.lending``) and on a run's books
(``workflows.run_book``): no Temporal, no clock, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from workflows import errors
from workflows.budget import reservation_micros
from workflows.contracts import Price, Target
from workflows.lending import (
    MIN_CALLS,
    SHARE,
    Lender,
    available_micros,
    lends,
    lent_micros,
    room_size,
)
from workflows.lending_contracts import (
    Books,
    CallNeed,
    LendRequest,
    Overrun,
    Recorded,
    Report,
)
from workflows.run_book import RECOVERED, RunBook, opening_books
from workflows.run_contracts import OpeningLine, RunInput

SMALL = Target("fake", "fake-small", "openai", Price(input=1_000_000, output=2_000_000))
PER_CALL = reservation_micros([SMALL], 100, 100)
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def request(borrower: str = "a", seq: int = 0, **kw: object) -> LendRequest:
    report = kw.pop("report", None) or Report(seq=seq)
    assert isinstance(report, Report)
    return LendRequest(borrower, report, per_call_micros=PER_CALL, opened_at="t0", **kw)  # type: ignore[arg-type]


def need(call_id: str = "c", *, final: bool = False) -> CallNeed:
    return CallNeed(call_id, [SMALL], 100, 100, final=final)


@given(
    st.integers(0, 10**9),
    st.integers(1, 10**6),
    st.integers(0, 10**9),
)
def test_room_is_whole_calls_within_a_share_or_nothing(
    available: int, per_call: int, want: int
) -> None:
    """Spare room: whole calls, at most a quarter of what is available, none near the cap."""
    room = room_size(available, per_call, want)
    assert room % per_call == 0
    assert room <= max(available // SHARE, 0)
    assert room == 0 or room // per_call >= MIN_CALLS
    assert room == 0 or lends(available, per_call)


def test_a_repeated_report_is_applied_once() -> None:
    """A report resent after a lost answer (same ``seq``) changes nothing the second time."""
    lender = Lender(Books(cap_micros=10_000))
    lender.line_of(request(), NOW).held_micros = 1_000
    report = Report(seq=1, spent_micros=400, charged_micros=400, calls=2)
    assert lender.apply_report(request(report=report), NOW)
    assert not lender.apply_report(request(report=report), NOW)
    assert lender.books.spent_micros == 400
    assert lender.books.lines["a"].held_micros == 600


def test_an_overrun_is_spent_but_never_taken_from_the_line() -> None:
    """A provider that billed past a reservation: all of it is spent, only the reservation
    leaves the line, and the excess is counted as an overrun."""
    lender = Lender(Books(cap_micros=10_000))
    lender.line_of(request(), NOW).held_micros = 1_000
    lender.apply_report(request(report=Report(seq=1, spent_micros=700, charged_micros=300)), NOW)
    assert lender.books.spent_micros == 700
    assert lender.books.overrun_micros == 400
    assert lender.books.lines["a"].held_micros == 700


def test_a_silent_journaled_borrower_is_billed_what_it_wrote() -> None:
    """Crash: unreported ledger rows at their cost, intents at their reservations; the rest of
    the line comes back, and a late word on that line is refused."""
    lender = Lender(Books(cap_micros=100_000))
    line = lender.line_of(request(), NOW)
    line.held_micros = 10_000
    lender.apply_report(
        request(report=Report(seq=1, spent_micros=500, charged_micros=500, calls=1)), NOW
    )
    found = Recorded(ledger_micros=1_200, ledger_calls=3, in_flight_micros=900, in_flight_calls=2)
    billed, calls = lender.reconcile("a", found)
    assert (billed, calls) == (700 + 900, 2 + 2)
    assert lender.books.spent_micros == 500 + 700 + 900
    assert lent_micros(lender.books) == 0
    assert lender.is_reconciled("a", "t0") and not lender.is_reconciled("a", "t1")


def test_a_silent_borrower_without_a_journal_is_billed_its_line() -> None:
    """No journal to read: the provider may have worked on every call it held money for."""
    lender = Lender(Books(cap_micros=100_000))
    line = lender.line_of(request(journaled=False), NOW)
    line.held_micros = 3_000
    assert lender.reconcile("a", Recorded()) == (3_000, 1)
    assert lender.books.spent_micros == 3_000


def test_silence_is_counted_from_the_last_word() -> None:
    """Only a borrower that holds money and has not been heard from counts as silent."""
    lender = Lender(Books(cap_micros=100_000))
    lender.line_of(request("a"), NOW).held_micros = 100
    lender.line_of(request("b"), NOW)
    later = NOW + timedelta(seconds=31)
    assert lender.silent(later, timedelta(seconds=30)) == ["a"]
    assert lender.next_silence(NOW, timedelta(seconds=30)) == timedelta(seconds=30)


def book(budget: int, **kw: object) -> RunBook:
    run = RunInput(run_id="r", budget_micros=budget, key_id="k", **kw)  # type: ignore[arg-type]
    return RunBook(run, opening_books(run, NOW))


def test_far_from_its_cap_a_run_lends_room_with_a_call() -> None:
    """A need is granted in full, and spare room comes with it (whole calls)."""
    run = book(1_000 * PER_CALL)
    answer = run.lend(request(needs=[need()], want_micros=4 * PER_CALL), NOW)
    assert answer.needs[0].granted_micros == PER_CALL
    assert answer.granted_micros == 4 * PER_CALL
    assert answer.held_micros == 5 * PER_CALL and answer.lend


def test_near_its_cap_a_run_lends_no_spare_room() -> None:
    """Under a few calls' worth available: each call is granted one by one, nothing more."""
    run = book(3 * PER_CALL)
    answer = run.lend(request(needs=[need()], want_micros=4 * PER_CALL), NOW)
    assert answer.needs[0].granted_micros == PER_CALL
    assert answer.granted_micros == 0 and not answer.lend


def test_a_need_waits_while_another_borrower_holds_unused_room() -> None:
    """Refused only after a recall: first "wait" (the others are asked to hand room back),
    then, on the last try, the refusal with the figures."""
    run = book(10 * PER_CALL)
    run.lend(request("a", want_micros=8 * PER_CALL), NOW)
    run.state.books.spent_micros = 10 * PER_CALL - lent_micros(run.state.books)
    waiting = run.lend(request("b", needs=[need()]), NOW)
    assert waiting.needs[0].wait and waiting.recalling == ["a"]
    assert run.state.books.lines["a"].recalled
    refused = run.lend(request("b", needs=[need(final=True)]), NOW)
    assert refused.needs[0].failure == errors.BUDGET_EXCEEDED
    assert refused.needs[0].refusal is not None
    handed_back = Report(seq=1, returned_micros=run.state.books.lines["a"].held_micros)
    run.lend(request("a", report=handed_back), NOW)
    assert run.lend(request("b", needs=[need()]), NOW).needs[0].granted_micros == PER_CALL


def test_the_first_refusal_alerts_once() -> None:
    """A refused call raises the run's ``refused`` alert, once."""
    run = book(50)  # less than the smallest answer costs
    for n in range(3):
        answer = run.lend(request(needs=[need(f"c{n}")]), NOW)
        assert answer.needs[0].failure == errors.BUDGET_EXCEEDED
    assert [a.kind for a in run.state.pending_alerts] == ["refused"]


def test_reports_carry_the_run_breakdown_and_thresholds() -> None:
    """A report's calls, per-step figures and spend land in the run; 50% alerts once."""
    from workflows.contracts import StepSpend

    run = book(1_000)
    run.lend(request(), NOW)  # the line opens
    run.state.books.lines["a"].held_micros = 600
    report = Report(
        seq=1,
        spent_micros=600,
        charged_micros=600,
        calls=2,
        by_step={"step:edit": StepSpend(2, 600, 10, 20)},
        by_model={"fake-small": StepSpend(2, 600, 10, 20)},
    )
    run.lend(request(report=report), NOW)
    spend = run.spend()
    assert (spend.spent_micros, spend.calls) == (600, 2)
    assert spend.by_step["step:edit"].cost_micros == 600
    assert [a.threshold_percent for a in run.state.pending_alerts] == [50]


def test_an_overrun_closes_its_target_to_the_run() -> None:
    """The target that billed past its reservation takes no more calls until resumed."""
    run = book(1_000_000)
    overrun = Overrun("c1", SMALL, 900, PER_CALL, 100, 350)
    run.lend(
        request(
            report=Report(
                seq=1, spent_micros=900, charged_micros=PER_CALL, calls=1, overruns=[overrun]
            )
        ),
        NOW,
    )
    answer = run.lend(request(needs=[need()]), NOW)
    assert answer.needs[0].failure == errors.TARGET_BLOCKED
    assert answer.blocked == ["fake/fake-small"] and answer.factors["fake/fake-small"] == 3500
    run.resume()
    assert run.lend(request(needs=[need("c2")]), NOW).needs[0].granted_micros > 0


def test_the_loop_guard_passes_every_call_through_the_run() -> None:
    """With the loop guard on, the run lends no room, and a repeated request pauses it."""
    run = book(1_000_000, loop_max_repeats=2)
    for n in range(2):
        answer = run.lend(
            request(needs=[CallNeed(f"c{n}", [SMALL], 100, 100, fingerprint="f")]), NOW
        )
        assert answer.per_call_only and not answer.lend and answer.needs[0].granted_micros
    looped = run.lend(request(needs=[CallNeed("c9", [SMALL], 100, 100, fingerprint="f")]), NOW)
    assert looped.needs[0].failure == errors.LOOP_DETECTED
    assert run.state.status == "looping"


def test_the_opener_holds_the_first_line() -> None:
    """A run opened by a caller starts with that caller's line (from the ``runs`` row)."""
    run = RunInput(
        run_id="r", budget_micros=10_000, opening=OpeningLine("a", 4_000, NOW.isoformat())
    )
    books = opening_books(run, NOW).books
    assert books.lines["a"].held_micros == 4_000
    assert available_micros(books) == 6_000


def test_a_silent_borrower_without_a_journal_leaves_one_unknown_row() -> None:
    """The ledger equals the run after a whole line is billed: one ``unknown`` row for it."""
    run = book(1_000_000)
    run.lend(request(journaled=False), NOW)
    run.state.books.lines["a"].held_micros = 2_000
    run.reconcile("a", Recorded(read=False), NOW)
    rows = run.state.pending_ledger
    assert [(r.status, r.cost_micros) for r in rows] == [("unknown", 2_000)]
    assert run.state.by_step[RECOVERED].cost_micros == 2_000


def test_a_run_that_holds_at_its_cap_pauses_and_alerts_once() -> None:
    """With ``hold_at_cap``, the call the cap refuses pauses the run (``run_held``, with the
    ways to approve), raises one ``held`` alert, and every later call is refused at once with
    no room lent."""
    run = book(50, hold_at_cap=True)  # less than the smallest answer costs
    first = run.lend(request(needs=[need("c0")]), NOW).needs[0]
    assert first.failure == errors.RUN_HELD and run.state.status == "paused"
    for words in ("/ui/runs/r", "runcap runs extend r --by", "POST /admin/runs/r/extend"):
        assert words in first.message
    for n in range(1, 3):
        answer = run.lend(request(needs=[need(f"c{n}")], want_micros=4 * PER_CALL), NOW)
        assert answer.needs[0].failure == errors.RUN_HELD and answer.needs[0].message
        assert answer.status == "paused" and not answer.lend and answer.granted_micros == 0
    assert [a.kind for a in run.state.pending_alerts] == ["held"]
    assert run.state.pending_alerts[0].detail == first.message


def test_pausing_recalls_unused_room_lent_elsewhere() -> None:
    """The call that pauses the run asks other borrowers to hand unused room back, so they
    hear of the pause at once instead of spending on."""
    run = book(10 * PER_CALL, hold_at_cap=True)
    run.lend(request("a", want_micros=8 * PER_CALL), NOW)
    run.state.books.spent_micros = 10 * PER_CALL - lent_micros(run.state.books)
    paused = run.lend(request("b", needs=[need(final=True)]), NOW)
    assert paused.needs[0].failure == errors.RUN_HELD and paused.recalling == ["a"]


def test_an_approval_reopens_a_paused_run() -> None:
    """``extend`` raises the cap and reopens the run (its idle clock restarts); the next call
    is granted, and the next pause, at the new cap, is a new ``held`` event."""
    run = book(50, hold_at_cap=True)
    run.lend(request(needs=[need("c0")]), NOW)
    later = NOW + timedelta(hours=5)
    assert run.extend(50 + 2 * PER_CALL, later)
    assert run.state.status == "open" and run.state.last_call_at == later.isoformat()
    assert run.lend(request(needs=[need("c1")]), later).needs[0].granted_micros == PER_CALL
    assert run.lend(request(needs=[need("c2")]), later).needs[0].granted_micros == PER_CALL
    assert run.lend(request(needs=[need("c3")]), later).needs[0].failure == errors.RUN_HELD
    events = [a.event_id for a in run.state.pending_alerts if a.kind == "held"]
    assert len(events) == 2 and events[0] != events[1]
    assert not book(50).extend(100, NOW)  # an open run: only its cap changes


def test_only_a_runs_own_cap_holds() -> None:
    """A run whose cap is only its key's largest (no per-run budget) refuses as before: a key's
    periods do not wait for an approval."""
    run = book(50, hold_at_cap=True, own_budget=False)
    answer = run.lend(request(needs=[need()]), NOW)
    assert answer.needs[0].failure == errors.BUDGET_EXCEEDED and run.state.status == "open"
