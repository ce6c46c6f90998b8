"""One granted call in the caller's process: walk the chain, then record how it ended.

However a call ends (answered, failed, cancelled by its client, broken mid-stream) it ends here
exactly once: its ledger row is written (before the answer's last byte leaves, its intent with
it) and its lines are told, for their next report. The cost is computed with the run's own
function, so the ledger row, the answer's headers and the run agree.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from caller.errors import CallFailed
from caller.lines import Hold
from caller.walk import Served, Walk
from providers.base import StreamProgress
from telemetry.genai import CallTrace
from workflows.budget import settled_cost, with_every_use
from workflows.contracts import (
    Attempt,
    CallResult,
    CallStatus,
    LedgerRow,
    Price,
    Target,
    Usage,
)

Record = Callable[["GrantedCall", LedgerRow, bool], Awaitable[None]]
"""Writes the row (when the caller has a database) and tells the call's lines how it ended
(``usage_known``: the usage is the provider's report, not the caller's bound)."""


@dataclass
class Admission:
    """What the keepers granted a call: its chain, its (possibly clamped) ``max_tokens``, what
    it holds, until when, and the run's figures for the answer's headers."""

    call_id: str
    chain: list[Target]
    max_tokens: int
    reserved_micros: int
    deadline: str
    budget_micros: int
    spent_micros: int
    remaining_micros: int


def received_bound(
    progress: StreamProgress, input_bound: int, max_tokens: int, price: Price
) -> Usage:
    """An upper bound of what a cut call used: the input the provider reported (else the
    caller's bound of it), one token per byte of output received, at most ``max_tokens``, and
    every server-tool use the call was allowed."""
    seen = progress.usage
    reported_input = seen.input_tokens + seen.cached_input_tokens + seen.cache_write_tokens
    output = max(min(progress.output_bytes, max_tokens), seen.output_tokens)
    bound = replace(seen, output_tokens=output) if reported_input else Usage(input_bound, output)
    return with_every_use(bound, price)


@dataclass
class CallReply:
    result: CallResult
    body: dict[str, Any] | None
    """The provider's answer in the caller's wire format (``None`` for a stream or a replay)."""


class GrantedCall:
    """A call the run granted: its walk, and its single ending."""

    def __init__(
        self,
        *,
        run_id: str,
        key_id: str,
        tags: list[str],
        requested_model: str,
        input_tokens: int,
        grant: Admission,
        walk: Walk,
        progress: StreamProgress,
        record: Record,
        trace: CallTrace,
        hold: Hold,
        started_at: datetime,
    ) -> None:
        self.run_id = run_id
        self.key_id = key_id
        self.tags = tags
        self.requested_model = requested_model
        self.input_tokens = input_tokens
        self.grant = grant
        self.walk = walk
        self.progress = progress
        self.record = record
        self.trace = trace
        self.hold = hold
        """What the call holds at each of its keepers' lines."""
        self.started = time.monotonic()
        self.started_at = started_at.isoformat()
        """The same instant its keepers and its intent were chosen with (its period's day)."""
        self.ended = False

    async def complete(self) -> CallReply:
        """A non-streaming call: the provider's answer, recorded."""
        served = await self._walk()
        result = await self._end("ok", served.target, served.usage, True)
        assert served.reply is not None
        return CallReply(result, served.reply.body)

    async def stream(self) -> tuple[list[bytes], CallResult, str]:
        """A streaming call (chunks go to the walk's sink): the closing chunks still to send,
        the recorded result, and why the stream broke (empty when it did not)."""
        served = await self._walk()
        streamed = served.streamed
        assert streamed is not None
        if streamed.broken:
            self.progress.usage = streamed.usage
            self.progress.output_bytes = streamed.output_bytes
            usage = self._received(served.target)
            result = await self._end("broken", served.target, usage, False, streamed.broken)
            return streamed.tail, result, streamed.broken
        result = await self._end("ok", served.target, streamed.usage, streamed.usage_known)
        return streamed.tail, result, ""

    async def _walk(self) -> Served:
        try:
            return await self.walk.run()
        except CallFailed as failed:
            await self._end("failed", None, Usage(), True, failed.message)
            raise
        except asyncio.CancelledError:
            # The client left (or the deadline passed): the provider may have started, so the
            # call is billed what it received. Recorded even while this task is being cancelled.
            usage = self._received(self.walk.current)
            await self._end("cancelled", self.walk.current, usage, False, "cancelled")
            raise

    def _received(self, target: Target | None) -> Usage:
        price = (target or self.grant.chain[0]).price
        return received_bound(self.progress, self.input_tokens, self.grant.max_tokens, price)

    async def _end(
        self,
        status: CallStatus,
        target: Target | None,
        usage: Usage,
        known: bool,
        error: str = "",
    ) -> CallResult:
        assert not self.ended, "a call ends once"
        self.ended = True
        grant = self.grant
        price = (target or grant.chain[0]).price
        cost = settled_cost(status, price, usage, known, grant.reserved_micros)
        latency = int((time.monotonic() - self.started) * 1000)
        attempts: list[Attempt] = list(self.walk.attempts)
        row = LedgerRow(
            call_id=grant.call_id,
            run_id=self.run_id,
            key_id=self.key_id,
            tags=self.tags,
            requested_model=self.requested_model,
            provider=target.provider if target else "",
            model=target.model if target else "",
            status=status,
            attempts=attempts,
            usage=usage,
            cost_micros=cost,
            reserved_micros=grant.reserved_micros,
            started_at=self.started_at,
            latency_ms=latency,
            error=error,
        )
        # Shielded: a client leaving now must not stop the row or the report half-way.
        await asyncio.shield(asyncio.ensure_future(self.record(self, row, known)))
        self.trace.ended(row, self.walk.ended)
        return CallResult(
            call_id=grant.call_id,
            status=status,
            cost_micros=cost,
            budget_micros=grant.budget_micros,
            spent_micros=grant.spent_micros + cost,
            remaining_micros=max(grant.remaining_micros + grant.reserved_micros - cost, 0),
            max_tokens=grant.max_tokens,
            target=target,
            usage=usage,
            attempts=attempts,
            error=error,
        )


@dataclass
class StreamEnd:
    tail: list[bytes]
    result: CallResult
    broken: str


class CallStream:
    """A streaming call's chunks as they arrive, then its closing chunks and result."""

    def __init__(self, call_id: str, chunks: asyncio.Queue[bytes]) -> None:
        self.call_id = call_id
        self.queue = chunks
        self.task: asyncio.Task[StreamEnd] | None = None
        self._first: bytes | None = None

    async def first(self) -> None:
        """Wait for the first chunk; raise ``CallFailed`` if the call ended without one."""
        chunk = await self._next()
        if chunk is None:
            assert self.task is not None
            self.task.result()  # raises the failure, if any
        self._first = chunk

    async def _next(self) -> bytes | None:
        assert self.task is not None
        queue = self.queue
        if not queue.empty():
            return queue.get_nowait()
        if self.task.done():
            return None
        getter = asyncio.ensure_future(queue.get())
        try:
            await asyncio.wait({getter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Also when the client leaves and this wait is cancelled: no getter outlives it.
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return queue.get_nowait() if not queue.empty() else None

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        while (chunk := await self._next()) is not None:
            yield chunk

    async def end(self) -> StreamEnd:
        """The closing chunks and the recorded result; raises ``CallFailed`` on failure."""
        assert self.task is not None
        return await self.task

    def abort(self) -> None:
        """The client left: cancel the upstream request; the call records what it received."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
