"""Settle batches: how finished calls reach their runs, off the calls' own path.

Every ``interval`` the settler sends each run one update carrying every call this caller
finished there since the last one. A run where this caller still has calls open but nothing to
settle gets an empty batch every ``heartbeat`` seconds: that is how the run knows the caller is
alive, and why a dead caller's calls are settled at their reservations after its timeout.
A batch that cannot be delivered stays queued and goes again; the run ignores settlements it
already has, so a repeat never charges twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from caller.runs import Runs
from workflows.contracts import SettleAck, SettleBatch, Settlement

log = logging.getLogger(__name__)
GIVE_UP_AFTER = 600.0
"""Seconds a batch keeps being retried; past that the run has settled the calls itself."""
GONE_AFTER = 30.0
"""Seconds a run may answer "not found" before its batch is dropped: during continue-as-new
an update can briefly find the old run closed, so one "not found" proves nothing."""


class Settler:
    """Batches settlements per run and sends them; one per caller process."""

    def __init__(
        self, runs: Runs, caller_id: str, *, interval: float = 0.2, heartbeat: float = 5.0
    ) -> None:
        self.runs = runs
        self.caller_id = caller_id
        self.interval = interval
        self.heartbeat = heartbeat
        self._queued: dict[str, list[Settlement]] = defaultdict(list)
        self._first_queued: dict[str, float] = {}
        self._open: dict[str, set[str]] = defaultdict(set)
        self._last_sent: dict[str, float] = {}
        self._sending: dict[str, asyncio.Task[Any]] = {}
        self._retired: dict[str, list[str]] = defaultdict(list)
        self._loop: asyncio.Task[None] | None = None
        self.on_ack: Callable[[str, SettleAck], None] = lambda run_id, ack: None
        """Told each run's answer to a batch (advances listen: the run may want them back)."""
        self.on_tick: Callable[[], None] = lambda: None
        """Called before each round of batches (advances retire idle ones then)."""

    def opened(self, run_id: str, call_id: str) -> None:
        """A call of this caller holds a reservation in ``run_id``: keep the run hearing from us."""
        self._open[run_id].add(call_id)
        self._last_sent.setdefault(run_id, time.monotonic())

    def add(self, run_id: str, settlement: Settlement) -> None:
        """Queue how a call ended; it reaches the run with the next batch."""
        self._open[run_id].discard(settlement.call_id)
        self._queued[run_id].append(settlement)
        self._first_queued.setdefault(run_id, time.monotonic())

    def retire(self, run_id: str, advance_id: str) -> None:
        """This caller is done with an advance: it goes back with the next batch, after every
        settlement already queued (the run applies a batch's settlements first)."""
        self._open[run_id].discard(advance_id)
        self._retired[run_id].append(advance_id)
        self._first_queued.setdefault(run_id, time.monotonic())

    def calls_open(self, run_id: str) -> int:
        """Calls of this caller in flight in ``run_id``."""
        return sum(not _is_advance(c) for c in self._open.get(run_id, ()))

    def in_flight(self) -> tuple[int, int]:
        """Runs where this caller has calls in flight, and those calls (for the api's gauges)."""
        counts = [sum(not _is_advance(c) for c in calls) for calls in self._open.values()]
        counts = [count for count in counts if count]
        return len(counts), sum(counts)

    def pending(self, run_id: str) -> bool:
        """Whether settlements for ``run_id`` wait to be sent or are on their way (their money
        is still held in the run)."""
        return self._due(run_id) or run_id in self._sending

    def _due(self, run_id: str) -> bool:
        return bool(self._queued.get(run_id) or self._retired.get(run_id))

    async def flush(self, run_id: str | None = None, tries: int = 20) -> None:
        """Send what is queued now (for one run, or all), and wait until the runs have it.

        A batch refused for a passing reason (the run was continuing as new) goes again, up to
        ``tries`` times. What calls queue meanwhile is not waited for: under load the queue is
        never empty.
        """
        for attempt in range(tries):
            # A batch the loop is sending now may come back to the queue: wait for it first.
            sending = [t for r, t in self._sending.items() if run_id in (None, r)]
            await asyncio.gather(*sending, return_exceptions=True)
            runs = [run_id] if run_id is not None else [*self._queued, *self._retired]
            runs = [r for r in dict.fromkeys(runs) if self._due(r)]
            if not runs:
                return
            if attempt:
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
            if all(await asyncio.gather(*(self._send(r) for r in runs))):
                return

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop after delivering what is queued (what cannot be, the runs expire)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=10)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.on_tick()
            except Exception:  # the loop must go on: settlements depend on it
                log.exception("advances tick failed")
            now = time.monotonic()
            due = [r for r in dict.fromkeys([*self._queued, *self._retired]) if self._due(r)]
            due += [
                r
                for r, calls in self._open.items()
                if calls and r not in due and now - self._last_sent.get(r, 0.0) >= self.heartbeat
            ]
            for run_id in [r for r, calls in self._open.items() if not calls]:
                if not self._due(run_id):
                    self._open.pop(run_id, None)
                    self._last_sent.pop(run_id, None)
            if due:
                await asyncio.gather(*(self._send(r) for r in due))

    async def _send(self, run_id: str) -> bool:
        """Deliver ``run_id``'s batch; False when it stays queued for another try."""
        task = asyncio.current_task()
        assert task is not None
        self._sending[run_id] = task
        try:
            return await self._deliver(run_id)
        finally:
            if self._sending.get(run_id) is task:
                del self._sending[run_id]

    async def _deliver(self, run_id: str) -> bool:
        items = self._queued.pop(run_id, [])
        retired = self._retired.pop(run_id, [])
        first = self._first_queued.pop(run_id, time.monotonic())
        self._last_sent[run_id] = time.monotonic()
        try:
            ack = await self.runs.settle(run_id, SettleBatch(self.caller_id, items, retired))
        except Exception as err:  # whatever went wrong, the batch is kept for the next try
            if not items and not retired:
                return True
            gone = isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND
            waited = time.monotonic() - first
            if waited > GIVE_UP_AFTER or (gone and waited > GONE_AFTER):
                log.warning("run %s took no settle of %d calls: %s", run_id, len(items), err)
                return True
            self._queued[run_id][:0] = items  # keep their order; they go with the next batch
            self._retired[run_id][:0] = retired
            self._first_queued[run_id] = first
            return False
        try:
            self.on_ack(run_id, ack)
        except Exception:  # the batch is delivered whatever its listener does
            log.exception("settle answer handler failed")
        return True


def _is_advance(call_id: str) -> bool:
    """An advance this caller holds (kept open for its heartbeats), not a call."""
    return call_id.startswith("adv-") and "/" not in call_id
