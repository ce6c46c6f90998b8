"""Advances, the caller's side: calls reserved in this process against a slice of the run's budget.

A call that finds this caller's advance for its run with room reserves there, with no Temporal
round trip before the provider. A run's call asks for an advance with its own reservation when
the caller holds none. An advance is retired (its calls settled, then the rest handed back in
the same settle batch) when a call no longer fits in it, after a second unused, at its use-by
time, when the run says so (near a cap, closed, a target closed), when a call is refused for
budget, and when the caller stops. Idempotent calls and runs under the loop guard always reserve
in the run; so does every call while the run grants no advance.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from caller.settler import Settler
from workflows.advances import CALLS_PER_ADVANCE
from workflows.budget import reservation_micros, target_key
from workflows.contracts import Advance, Grant, ReserveRequest, SettleAck, Target

IDLE_SECONDS = 1.0
"""An advance unused this long goes back: an idle caller holds nothing a crash would bill."""
DENIED_SECONDS = 1.0
"""After the run declined an advance, its calls reserve one by one this long before asking again."""
ASKING_SECONDS = 30.0
"""The longest a refused call waits for another call's reservation that asks for an advance."""
HEARD_WITHIN = 10.0
"""No new call under an advance when the run has not answered this caller for this long."""


@dataclass
class Held:
    """This caller's advance in one run, and how much of it its calls hold."""

    run_id: str
    advance: Advance
    figures: Grant
    """The run's figures when it granted the advance (for the answers' budget headers)."""
    use_until: float
    heard_at: float
    last_used: float
    calls: int = 0
    in_flight: int = 0
    in_flight_micros: int = 0
    spent: int = 0
    retiring: bool = False
    returned: bool = False

    @property
    def unspent(self) -> int:
        """What its calls have not spent: room now, plus what calls in flight hold."""
        return self.advance.micros - self.spent

    @property
    def available(self) -> int:
        """Room for a new call."""
        return self.unspent - self.in_flight_micros


class Advances:
    """This caller's advances: one in use per run, and those handed back whose calls still run."""

    def __init__(self, settler: Settler) -> None:
        self.settler = settler
        self._held: dict[str, Held] = {}
        """The advance each run's calls reserve under now."""
        self._draining: dict[str, Held] = {}
        """Advances handed back whose calls are still running, by advance id."""
        self._asking: dict[str, asyncio.Future[None]] = {}
        self._denied_until: dict[str, float] = {}
        self._busiest: dict[str, int] = {}
        """The most calls of a run seen wanting its advance at once: the next one covers twice."""
        settler.on_ack = self.acked
        settler.on_tick = self.tick

    def take(self, run_id: str, req: ReserveRequest, *, ask: bool = True) -> Grant | None:
        """A grant under the advance for ``run_id`` when ``req`` fits in it; else ``None``. With
        ``ask``, when this caller holds none and none is being asked for, ``req`` asks for one
        (``want_advance``) and its reservation must end with ``answered``."""
        now = time.monotonic()
        held = self._held.get(run_id)
        if held is not None:
            chain = [t for t in req.chain if target_key(t) not in held.advance.blocked]
            fresh = (
                now < held.use_until
                and now - held.heard_at < HEARD_WITHIN
                and held.calls < CALLS_PER_ADVANCE
            )
            need = _need(held, chain, req) if chain and fresh else None
            if need is not None and need <= held.available:
                return self._grant(held, chain, req, need, now)
            self._busiest[run_id] = max(self._busiest.get(run_id, 0), held.in_flight + 1)
            if need is not None and need <= held.unspent:
                return None  # its calls in flight hold the rest: this one reserves in the run
            self._retire(run_id, held)  # used up, stale, or no target it may serve
        if not ask:  # a refused call: what a handed-back advance has left still serves it
            return self._from_draining(run_id, req, now)
        if run_id not in self._asking and now >= self._denied_until.get(run_id, 0.0):
            req.want_advance = True
            req.advance_calls = 2 * max(
                self._busiest.pop(run_id, 0), self.settler.calls_open(run_id)
            )
            self._asking[run_id] = asyncio.get_running_loop().create_future()
        return None

    def _from_draining(self, run_id: str, req: ReserveRequest, now: float) -> Grant | None:
        for held in self._draining.values():
            if held.run_id != run_id or now >= held.use_until or held.calls >= CALLS_PER_ADVANCE:
                continue
            chain = [t for t in req.chain if target_key(t) not in held.advance.blocked]
            need = _need(held, chain, req) if chain else None
            if need is not None and need <= held.available:
                return self._grant(held, chain, req, need, now)
        return None

    def _grant(
        self, held: Held, chain: list[Target], req: ReserveRequest, need: int, now: float
    ) -> Grant:
        held.in_flight += 1
        held.in_flight_micros += need
        held.calls += 1
        held.last_used = now
        deadline = datetime.now(UTC) + timedelta(seconds=held.advance.call_timeout_seconds)
        return Grant(
            call_id=f"{held.advance.advance_id}/{held.calls}",
            chain=chain,
            max_tokens=req.max_tokens,
            reserved_micros=need,
            deadline=deadline.isoformat(),
            budget_micros=held.figures.budget_micros,
            spent_micros=held.figures.spent_micros + held.spent,
            remaining_micros=max(held.figures.remaining_micros + held.available, 0),
        )

    def answered(self, run_id: str, grant: Grant | None) -> None:
        """The asking reservation came back (``None``: it failed)."""
        future = self._asking.pop(run_id, None)
        if future is not None and not future.done():
            future.set_result(None)
        if grant is None or grant.advance is None:
            self._denied_until[run_id] = time.monotonic() + DENIED_SECONDS
            return
        now = time.monotonic()
        advance = grant.advance
        use_for = datetime.fromisoformat(advance.use_until) - datetime.now(UTC)
        old = self._held.get(run_id)
        if old is not None:
            self._retire(run_id, old)
        self._held[run_id] = Held(
            run_id=run_id,
            advance=advance,
            figures=grant,
            use_until=now + use_for.total_seconds(),
            heard_at=now,
            last_used=now,
        )
        self.settler.opened(run_id, advance.advance_id)  # heartbeats while it is held

    async def settled_asking(self, run_id: str) -> None:
        """Wait for a reservation of ``run_id`` that is asking for an advance, if any."""
        future = self._asking.get(run_id)
        if future is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(future), ASKING_SECONDS)

    def ended(self, run_id: str, advance_id: str, reserved: int, cost: int) -> None:
        """A call under an advance ended (its settlement is queued): its hold becomes its cost."""
        held = self._held.get(run_id)
        if held is None or held.advance.advance_id != advance_id:
            held = self._draining.get(advance_id)
        if held is None:
            return
        held.in_flight -= 1
        held.in_flight_micros -= reserved
        held.spent += cost
        if held.retiring or cost > reserved:  # an overrun: the run closes that target now
            self._retire(run_id, held)

    def hand_back(self, run_id: str) -> bool:
        """A call of ``run_id`` was refused for budget: retire the advance. True when its rest
        is on its way back now (no call under it in flight)."""
        held = self._held.get(run_id)
        if held is None:
            return False
        self._retire(run_id, held)
        return held.advance.advance_id not in self._draining

    def acked(self, run_id: str, ack: SettleAck) -> None:
        """The run answered a settle batch; it may want its advances back."""
        held = self._held.get(run_id)
        if not ack.advances:
            self._denied_until[run_id] = time.monotonic() + DENIED_SECONDS
            if held is not None:
                self._retire(run_id, held)
        elif held is not None:
            held.heard_at = time.monotonic()

    def tick(self) -> None:
        """Retire advances unused for a while or past their use-by time."""
        now = time.monotonic()
        for run_id, held in list(self._held.items()):
            if now - held.last_used >= IDLE_SECONDS or now >= held.use_until:
                self._retire(run_id, held)

    def retire_all(self) -> None:
        for run_id, held in list(self._held.items()):
            self._retire(run_id, held)

    def _retire(self, run_id: str, held: Held) -> None:
        """No new call under ``held``; it goes back once its calls have ended."""
        held.retiring = True
        if held.returned:
            return
        if self._held.get(run_id) is held:
            del self._held[run_id]
        advance_id = held.advance.advance_id
        if held.in_flight:
            self._draining[advance_id] = held
        else:
            self._draining.pop(advance_id, None)
            held.returned = True
            self.settler.retire(run_id, advance_id)


def _need(held: Held, chain: list[Target], req: ReserveRequest) -> int:
    return reservation_micros(chain, req.input_tokens, req.max_tokens, held.advance.factors)
