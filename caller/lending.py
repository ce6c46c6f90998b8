"""Lending, the caller's side: this process's lines at its keepers (``workflows.lending``).

A call needs room at each of its keepers: its run, each of its key's periods, and (a sub-agent's
call) its run's parent runs, which show what their sub-agents spend. Where this
process's line has the room, the call holds it there, in memory, with no await between the
checks and the holds: no Temporal round trip. Where it has not (a new line, or a keeper near its
cap), the call asks that keeper for its worst case (a ``CallNeed``); needs waiting at one keeper
go together in one request. A need that must wait while other processes return unused room
nudges them through the journal and asks again for about a second, then is refused.

Each line reports what its calls spent every few seconds, or sooner when its room runs low, and
tops its room up in the same request; it heartbeats while it holds money, hands its room back
after a minute unused, at once when the keeper recalls it or stops lending, and on shutdown.
Reports to one keeper go one at a time and are resent unchanged until answered, so the keeper
applies each once; every answer carries the keeper's view of the line, which this side adopts.

One line's own books (what it holds, its report on the way) are in ``caller.lines``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from caller.errors import CallFailed
from caller.lines import Ending, Hold, Keeper, LocalLine
from workflows import errors
from workflows.budget import merge_spend, reservation_micros, step_of, target_key
from workflows.contracts import StepSpend
from workflows.errors import Failure
from workflows.lending_contracts import (
    CallNeed,
    LendAnswer,
    LendRequest,
    NeedAnswer,
    Overrun,
)
from workflows.run_contracts import RunInput

log = logging.getLogger(__name__)

RECALL_WAIT = 1.0
"""The longest a call waits for other processes to hand back unused room before it is refused."""
RECALL_RETRY = 0.1
RECALL_TRIES = 1 + int(RECALL_WAIT / RECALL_RETRY)
"""The wait is bounded by its tries too, not only by the clock (a clock that stands still,
as in a test or a suspended VM, must not hold a call forever)."""
URGENT, ROUTINE = "urgent", "routine"
ROUTINE_PER_TICK = 4
"""At least this many routine reports go out per tick, however few lines there are."""


class KeeperTransport(Protocol):
    """How a ``LendRequest`` reaches a keeper (a Temporal update in production)."""

    async def lend(self, keeper: Keeper, req: LendRequest) -> LendAnswer: ...


Nudge = Callable[[Sequence[str]], Awaitable[None]]
"""Tells the borrowers of these keepers to hand unused room back (through the journal)."""


class Lending:
    """This process's lines, and the loop that reports, heartbeats and hands room back."""

    def __init__(
        self,
        borrower: str,
        transport: KeeperTransport,
        *,
        journaled: bool,
        nudge: Nudge | None = None,
        report_every: float = 5.0,
        heartbeat: float = 10.0,
        fresh_for: float = 20.0,
        idle_after: float = 60.0,
        tick: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        recall_retry: float = RECALL_RETRY,
    ) -> None:
        self.borrower = borrower
        self.transport = transport
        self.journaled = journaled
        self.nudge = nudge
        self.report_every = report_every
        self.heartbeat = heartbeat
        self.fresh_for = fresh_for
        """A line not heard from for this long takes no local hold: its keeper may be about to
        count this process silent (``caller_timeout_seconds``) and bill its line."""
        self.idle_after = idle_after
        self.tick = tick
        self.clock = clock
        self.recall_retry = recall_retry
        self.lines: dict[str, LocalLine] = {}
        self._loop: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[Any]] = set()

    # ---- calls --------------------------------------------------------------------------

    def line(self, keeper: Keeper) -> LocalLine:
        line = self.lines.get(keeper.workflow_id)
        if line is None or line.gone:
            line = LocalLine(keeper, now=self.clock(), journaled=self.journaled)
            self.lines[keeper.workflow_id] = line
        return line

    def adopt(self, keeper: Keeper, micros: int, opened_at: str) -> None:
        """A line this process opened with its run (the ``runs`` row), before the run's
        workflow exists: usable at once."""
        line = self.line(keeper)
        line.limit += micros
        if isinstance(keeper.start, RunInput):
            line.cap = keeper.start.budget_micros
            line.spent = keeper.start.spent_before_micros
        line.opened_at = opened_at
        line.heard_at = self.clock()

    async def reserve(self, keepers: Sequence[Keeper], need: CallNeed) -> Hold:
        """Hold ``need``'s worst case at every keeper: in memory where every line has room (no
        await between the checks and the holds), else keeper by keeper, the run first, asking
        each that has no room here for a grant. Raises ``CallFailed`` when refused; what the
        call held elsewhere is then given back."""
        lines = [self.line(k) for k in keepers]
        run_line = lines[0]
        chain = [t for t in need.chain if target_key(t) not in run_line.blocked]
        need = replace(need, chain=chain or need.chain, factors=dict(run_line.factors))
        amount = reservation_micros(need.chain, need.input_tokens, need.max_tokens, need.factors)
        now = self.clock()
        if chain and all(line.can_hold(amount, now, self.fresh_for) for line in lines):
            for line in lines:
                line.hold(amount, now)
            holds = [(line, amount) for line in lines]
            return Hold(need.call_id, need.chain, need.max_tokens, amount, holds, run_line)
        held: list[tuple[LocalLine, int]] = []
        try:
            # The key's caps first: a run's own cap, when it has one, is usually the tighter,
            # and a call a period refuses is told so (its reset, its scope).
            for line in [*lines[1:], run_line]:
                if chain and line.can_hold(amount, self.clock(), self.fresh_for):
                    line.hold(amount, self.clock())
                    held.append((line, amount))
                    continue
                line.per_call = max(line.per_call, amount)  # room is asked for in such calls
                answer = await self._need(line, need)
                refused = not answer.granted_micros
                if refused and answer.failure != errors.BUDGET_EXCEEDED:
                    raise _refused(answer)
                if refused and not (chain and line.can_hold(amount, self.clock(), self.fresh_for)):
                    raise _refused(answer, line)  # nor has a call given room back meanwhile
                if refused:
                    line.hold(amount, self.clock())
                    held.append((line, amount))
                    continue
                held.append((line, answer.granted_micros))
                if answer.max_tokens < need.max_tokens:  # clamped: the others hold less too
                    need = replace(need, max_tokens=answer.max_tokens)
                    clamped = reservation_micros(
                        need.chain, need.input_tokens, need.max_tokens, need.factors
                    )
                    for other, micros in held:
                        other.in_flight -= micros - clamped
                    held = [(other, clamped) for other, _ in held]
                    amount = clamped
        except BaseException:
            for line, micros in held:
                line.release(micros)
            raise
        return Hold(need.call_id, need.chain, need.max_tokens, amount, held, run_line)

    async def _need(self, line: LocalLine, need: CallNeed) -> NeedAnswer:
        """``need`` granted by the keeper, waiting (about a second at most) while others hand
        back unused room."""
        deadline = self.clock() + RECALL_WAIT
        for _ in range(RECALL_TRIES):
            answer = await self._ask(line, need)
            if not answer.wait:
                return answer
            if self.clock() >= deadline:
                break
            await asyncio.sleep(self.recall_retry)
        return await self._ask(line, replace(need, final=True))

    async def _ask(self, line: LocalLine, need: CallNeed) -> NeedAnswer:
        """Queue ``need`` at the line's keeper; needs queued meanwhile go in one request."""
        done: asyncio.Future[NeedAnswer] = asyncio.get_running_loop().create_future()
        line.waiting.append((need, done))
        async with line.lock:
            if not done.done():
                batch, line.waiting = line.waiting, []
                try:
                    answer = await self._send(line, [n for n, _ in batch])
                except Exception as err:
                    for _, future in batch:
                        future.set_exception(_unreachable(err))
                else:
                    by_id = {a.call_id: a for a in answer.needs}
                    for sent, future in batch:
                        future.set_result(by_id.get(sent.call_id, NeedAnswer(sent.call_id)))
                    if answer.recalling and self.nudge is not None:
                        await self.nudge([line.keeper.workflow_id])
        return await done

    def ended(self, hold: Hold, ending: Ending) -> bool:
        """A call ended: its holds become its cost (reported with the next report). True when
        the run should hear of it at once (an overrun closes its target there)."""
        urgent = False
        for line, micros in hold.lines:
            line.in_flight -= micros
            line.calls_in_flight -= 1
            if line.gone:
                continue  # billed by its keeper when this process was counted silent
            charged = min(ending.cost, micros)
            line.unacked += charged
            news = line.news
            news.spent += ending.cost
            news.charged += charged
            if not ending.ok:
                news.failed += 1
                continue
            news.calls += 1
            if not line.keeper.is_run:
                continue  # a period counts money, not steps
            usage = ending.usage
            tokens_in = usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
            spend = StepSpend(1, ending.cost, tokens_in, usage.output_tokens)
            merge_spend(news.by_step, {step_of(ending.tags): spend})
            merge_spend(news.by_model, {ending.model: spend})
            if line is not hold.run_line:
                continue  # a parent's run shows its sub-agents' spend; the row is the run's
            if ending.row is not None:
                news.rows.append(ending.row)
            if ending.cost > micros and ending.target is not None:
                news.overruns.append(
                    Overrun(
                        hold.call_id,
                        ending.target,
                        ending.cost,
                        micros,
                        ending.max_tokens,
                        usage.output_tokens,
                    )
                )
                urgent = True
        return urgent

    # ---- reports ------------------------------------------------------------------------

    async def report(self, keeper_id: str, *, hand_back: bool = False) -> None:
        """Send the line's news now (``hand_back``: and all its unused room)."""
        line = self.lines.get(keeper_id)
        if line is None or line.gone:
            return
        if hand_back:
            line.recalled = True
        async with line.lock:
            await self._send(line, [])

    async def flush(self, *, hand_back: bool = False) -> None:
        """Report every line's news now (``hand_back``: and all unused room), and wait."""
        for line in list(self.lines.values()):
            if hand_back:
                line.recalled = True
            if line.sending is not None or not line.news.empty() or line.room > 0:
                async with line.lock:
                    await self._send(line, [])

    async def _send(self, line: LocalLine, needs: list[CallNeed]) -> LendAnswer:
        """One request to the line's keeper (the caller holds ``line.lock``)."""
        now = self.clock()
        idle = now - line.used_at >= self.idle_after and not needs
        keep = line.lend and not line.recalled and not idle and line.status == "open"
        report, want = line.freeze(keep_room=keep)
        req = LendRequest(
            borrower=self.borrower,
            report=report,
            want_micros=want,
            per_call_micros=line.per_call,
            needs=needs,
            opened_at=line.opened_at,
            journaled=self.journaled,
        )
        line.sent_at = now
        try:
            answer = await self.transport.lend(line.keeper, req)
        except CallFailed as failed:
            if failed.kind == errors.LINE_GONE:
                self._forget(line)
            raise
        line.answered(report, answer, self.clock())
        line.opened_at = req.opened_at  # the transport opens a line afresh at a reopened run
        for need_answer in answer.needs:
            if need_answer.granted_micros:
                line.hold(need_answer.granted_micros, now)
        if answer.recalled or not answer.lend:
            self._soon(line)
        return answer

    def _forget(self, line: LocalLine) -> None:
        """The keeper billed this line when this process was counted silent: start afresh."""
        line.gone = True
        if self.lines.get(line.keeper.workflow_id) is line:
            del self.lines[line.keeper.workflow_id]

    def _soon(self, line: LocalLine) -> None:
        """Hand unused room back right after this request (the keeper wants it)."""
        if line.room <= 0 and line.news.empty():
            return
        task = asyncio.get_running_loop().create_task(self.report(line.keeper.workflow_id))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def due(self, line: LocalLine, now: float) -> str:
        """Whether the line should report now: ``urgent`` (its room runs low, it holds room its
        keeper wants back, or a report failed), ``routine`` (on time, or a heartbeat), or not
        (empty)."""
        if line.sending is not None:
            return URGENT  # a report that failed: resend it
        news = not line.news.empty()
        if news and line.room < max(line.desired_room() // 2, line.per_call):
            return URGENT  # topped up before its room runs out
        if line.room > 0 and (line.recalled or not line.lend):
            return URGENT  # room its keeper wants back
        if news and now - line.sent_at >= self.report_every:
            return ROUTINE
        if line.room > 0 and now - line.used_at >= self.idle_after:
            return ROUTINE  # idle room to hand back
        if line.holding() and now - line.sent_at >= self.heartbeat:
            return ROUTINE
        return ""

    async def tick_once(self) -> None:
        """One round: report, heartbeat or hand back where due; forget idle empty lines.

        Routine reports are spread over the ticks of a report interval (the oldest first), so
        hundreds of runs' lines that opened together do not all report in one tick: such a
        burst held the event loop for tens of ms while the calls in flight waited.
        """
        now = self.clock()
        urgent, routine = [], []
        for line in list(self.lines.values()):
            if line.lock.locked():
                continue
            kind = self.due(line, now)
            if kind == URGENT:
                urgent.append(line)
            elif kind == ROUTINE:
                routine.append(line)
            elif not line.holding() and line.news.empty() and now - line.used_at >= self.idle_after:
                del self.lines[line.keeper.workflow_id]
        ticks = self.report_every / self.tick  # the ticks of one report interval
        share = len(routine) if ticks <= 1 else max(ROUTINE_PER_TICK, len(self.lines) / ticks)
        routine.sort(key=lambda line: line.sent_at)
        due = [*urgent, *routine[: math.ceil(share)]]
        if due:
            await asyncio.gather(*(self._report_quietly(line) for line in due))

    async def _report_quietly(self, line: LocalLine) -> None:
        try:
            async with line.lock:
                await self._send(line, [])
        except Exception as err:  # kept for the next round: the report is resent as it is
            log.info("report to %s failed: %s", line.keeper.workflow_id, err)

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                await self.tick_once()
            except Exception:  # the loop must go on: reports depend on it
                log.exception("lending tick failed")

    async def stop(self, within: float = 10.0) -> None:
        """Hand every line's room back and report what is left (what cannot be, the keepers
        reconcile)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for line in self.lines.values():
            line.recalled = True
        with contextlib.suppress(Exception, TimeoutError):
            async with asyncio.timeout(within):
                await asyncio.gather(*self._sends, return_exceptions=True)
                await asyncio.gather(
                    *(self._report_quietly(line) for line in list(self.lines.values()))
                )

    def in_flight(self) -> tuple[int, int]:
        """Runs where this process has calls in flight, and those calls (for gauges)."""
        counts = [
            line.calls_in_flight
            for line in self.lines.values()
            if line.keeper.is_run and line.calls_in_flight
        ]
        return len(counts), sum(counts)


def _refused(answer: NeedAnswer, line: LocalLine | None = None) -> CallFailed:
    """The keeper's refusal, its figures brought up to date with this process's own: what its
    calls spent that the keeper has not heard of yet, and what its calls in flight hold now."""
    kind = answer.failure or errors.BUDGET_EXCEEDED
    message = answer.message or "the budget cannot pay for this call"
    refusal = answer.refusal
    if refusal is not None and line is not None:
        refusal.spent_micros += line.unacked  # charged by calls that ended, not yet heard of
        others = max(refusal.reserved_micros - line.reported_in_flight, 0)
        refusal.reserved_micros = others + line.in_flight
        unheld = refusal.budget_micros - refusal.spent_micros - refusal.reserved_micros
        refusal.remaining_micros = max(unheld, 0)
    return CallFailed(Failure(kind, message, refusal=refusal))


def _unreachable(err: BaseException) -> BaseException:
    if isinstance(err, CallFailed):
        return err
    return CallFailed.of(errors.TEMPORAL_UNAVAILABLE, f"the budget keeper did not answer: {err}")
