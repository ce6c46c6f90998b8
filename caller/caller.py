"""``Caller``: make model calls through an ``AgentRun`` from any process outside a workflow.

One Temporal round trip per call: ``reserve`` (an update) returns a grant, the caller walks the
chain itself and answers at once, and settlements reach the run in batches. The body and the
answer never leave this process. The api serves every request with one ``Caller``; a Python
program uses one to drive a run from the Temporal client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from temporalio.client import Client

from caller.advances import Advances
from caller.call import CallReply, CallStream, GrantedCall, StreamEnd
from caller.errors import CallFailed
from caller.ledger import LedgerWriter
from caller.runs import Runs, run_id_of
from caller.settler import Settler
from caller.walk import Walk, WalkPolicy
from providers.base import Provider, ProviderCall, StreamProgress
from telemetry.genai import CallObserver, CallTrace
from workflows import errors
from workflows.budget import estimate_input_tokens
from workflows.contracts import (
    TASK_QUEUE,
    Grant,
    LedgerRow,
    ReserveRequest,
    RunInput,
    Settlement,
    Target,
    Usage,
    WireFormat,
)

T = TypeVar("T")


def advance_of(call_id: str) -> str:
    """The advance a call was reserved under (its id is ``<advance>/<n>``), else empty."""
    advance, under, _ = call_id.partition("/")
    return advance if under else ""


DEADLINE_MARGIN_SECONDS = 5.0
"""The walk stops this long before the grant's deadline, so the caller, not the run's expiry,
records how the call ended."""


@dataclass
class CallSpec:
    """One call as the caller knows it: the body in its own wire format, and how to route it."""

    body: dict[str, Any]
    inbound: WireFormat
    chain: list[Target]
    max_tokens: int
    tags: list[str] = field(default_factory=list)
    call_id: str = ""
    """Set it to make the call idempotent (the same id is one call); empty picks a fresh one."""
    headers: dict[str, str] = field(default_factory=dict)
    requested_model: str = ""
    input_tokens: int | None = None
    """An upper bound of the prompt's tokens; measured from the body when not given."""
    first_byte_timeout: float | None = None
    """Overrides the policy's first-byte timeout (routes may set their own)."""
    fingerprint: str = ""
    """A hash of the request's messages and tools, for the run's loop guard."""
    received_at: float | None = None
    """``time.perf_counter()`` when the request arrived (the api sets it): the call's total time,
    and so runcap's added latency, counts from there rather than from ``call()``."""


class Caller:
    """Reserves in runs, walks chains, records calls and settles them in batches."""

    def __init__(
        self,
        client: Client,
        providers: Mapping[str, Provider],
        *,
        engine: Engine | None = None,
        workflow_task_queue: str = TASK_QUEUE,
        policy: WalkPolicy | None = None,
        settle_interval: float = 0.2,
        heartbeat: float = 5.0,
        caller_id: str | None = None,
        observer: CallObserver | None = None,
        advances: bool = True,
    ) -> None:
        self.providers = providers
        self.policy = policy or WalkPolicy()
        self.caller_id = caller_id or f"caller-{uuid.uuid4().hex[:12]}"
        self.runs = Runs(client, workflow_task_queue)
        self.settler = Settler(
            self.runs, self.caller_id, interval=settle_interval, heartbeat=heartbeat
        )
        self.ledger = LedgerWriter(engine) if engine is not None else None
        """Without a database the run writes the ledger rows itself, a moment later."""
        self.observer = observer
        """Told how each granted call ended (the api's metrics)."""
        self.advances = Advances(self.settler) if advances else None
        """Slices of runs' budgets this caller reserves calls against without a hop."""

    async def __aenter__(self) -> Caller:
        await self.settler.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.advances is not None:
            self.advances.retire_all()
        await self.settler.stop()

    async def call(self, run: RunInput | str, spec: CallSpec) -> CallReply:
        """A non-streaming call. ``run`` is a run id, or a ``RunInput`` to start it if needed."""
        call_trace = self._trace(run, spec, stream=False)
        with call_trace.opening():
            granted = await self._grant(run, spec, call_trace, stream=False)
            if isinstance(granted, CallReply):
                call_trace.replayed(granted.result)
                return granted
            return await self._bounded(granted, granted.complete())

    async def stream(self, run: RunInput | str, spec: CallSpec) -> CallStream:
        """A streaming call; returns once the first chunk arrived or the call ended.

        Waiting for the first chunk means a refusal or a chain that failed before any byte
        still surfaces as ``CallFailed``, so the api can answer with a proper status.
        """
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        async def sink(chunk: bytes) -> None:
            queue.put_nowait(chunk)

        call_trace = self._trace(run, spec, stream=True)
        with call_trace.opening():
            granted = await self._grant(run, spec, call_trace, stream=True, sink=sink)
            if isinstance(granted, CallReply):
                raise CallFailed.of(
                    errors.BAD_CALL, f"call {granted.result.call_id} already settled"
                )
            call_stream = CallStream(granted.grant.call_id, queue)

            async def run_stream() -> StreamEnd:
                return StreamEnd(*await self._bounded(granted, granted.stream()))

            # Created while the call's span is current: the attempts' spans are its children.
            call_stream.task = asyncio.create_task(run_stream())
            await call_stream.first()
            return call_stream

    def _trace(self, run: RunInput | str, spec: CallSpec, *, stream: bool) -> CallTrace:
        return CallTrace(
            run_id=run_id_of(run),
            key_id=run.key_id if isinstance(run, RunInput) else "",
            requested_model=spec.requested_model,
            chain=spec.chain,
            tags=spec.tags,
            max_tokens=spec.max_tokens,
            stream=stream,
            observer=self.observer,
            started=spec.received_at if spec.received_at is not None else time.perf_counter(),
        )

    async def _grant(
        self,
        run: RunInput | str,
        spec: CallSpec,
        call_trace: CallTrace,
        *,
        stream: bool,
        sink: Any = None,
    ) -> GrantedCall | CallReply:
        input_tokens = spec.input_tokens
        if input_tokens is None:
            input_tokens = estimate_input_tokens(spec.body)
        req = ReserveRequest(
            call_id=spec.call_id or uuid.uuid4().hex,
            caller_id=self.caller_id,
            chain=spec.chain,
            input_tokens=input_tokens,
            max_tokens=spec.max_tokens,
            requested_model=spec.requested_model,
            tags=spec.tags,
            stream=stream,
            fingerprint=spec.fingerprint,
        )
        run_id = run_id_of(run)
        grant = None
        if self.advances is not None and not spec.call_id and not spec.fingerprint:
            grant = self.advances.take(run_id, req)  # idempotent and guarded calls never
        if grant is None:
            grant = await self._reserve(run, req)
            if grant.settled is not None:
                return CallReply(grant.settled, None)
        self.settler.opened(run_id, grant.call_id)
        progress = StreamProgress()
        timeout = self.policy.first_byte_timeout
        if spec.first_byte_timeout is not None:
            timeout = spec.first_byte_timeout

        def make_call(target: Target) -> ProviderCall:
            progress.usage, progress.output_bytes = Usage(), 0
            return ProviderCall(
                body=spec.body,
                inbound=spec.inbound,
                model=target.model,
                max_tokens=grant.max_tokens,
                headers=spec.headers,
                first_byte_timeout=timeout,
                progress=progress,
            )

        key_id = run.key_id if isinstance(run, RunInput) else ""
        walk = Walk(grant.chain, self.providers, make_call, self.policy, sink=sink)
        return GrantedCall(
            run_id=run_id,
            key_id=key_id,
            tags=list(spec.tags),
            requested_model=spec.requested_model,
            input_tokens=input_tokens,
            grant=grant,
            walk=walk,
            progress=progress,
            record=self._record,
            trace=call_trace,
            advance_id=advance_of(grant.call_id),
        )

    async def _reserve(self, run: RunInput | str, req: ReserveRequest) -> Grant:
        """The run's grant; a reservation asking for an advance lets the advances know."""
        if not req.want_advance or self.advances is None:
            return await self._reserve_in_run(run, req)
        run_id = run_id_of(run)
        grant = None
        try:
            grant = await self._reserve_in_run(run, req)
            return grant
        finally:
            self.advances.answered(run_id, grant)

    async def _reserve_in_run(self, run: RunInput | str, req: ReserveRequest) -> Grant:
        run_id = run_id_of(run)
        try:
            return await self.runs.reserve(run, req)
        except CallFailed as refused:
            if refused.kind != errors.BUDGET_EXCEEDED:
                raise
            handed_back = False
            if self.advances is not None and not req.want_advance:
                # Money may sit in this caller's advance: use it, or hand it back.
                await self.advances.settled_asking(run_id)
                local = self.advances.take(run_id, req, ask=False)
                if local is not None:
                    return local
                handed_back = self.advances.hand_back(run_id)
            if not handed_back and not self.settler.pending(run_id):
                raise
        # Calls of ours that finished still hold their reservations until their batch lands:
        # deliver it now, so no call is refused while money remains.
        await self.settler.flush(run_id)
        return await self.runs.reserve(run, replace(req, want_advance=False))

    async def _bounded(self, granted: GrantedCall, work: Awaitable[T]) -> T:
        """``work`` within the grant's deadline (minus a margin): no call holds money forever."""
        deadline = datetime.fromisoformat(granted.grant.deadline)
        left = (deadline - datetime.now(UTC)).total_seconds() - DEADLINE_MARGIN_SECONDS
        try:
            async with asyncio.timeout(max(left, 1.0)):
                return await work
        except TimeoutError:
            raise CallFailed.of(
                errors.PROVIDER_UNAVAILABLE, "the call ran past its deadline and was stopped"
            ) from None

    async def _record(self, run_id: str, row: LedgerRow, settlement: Settlement) -> None:
        if self.ledger is not None:
            with contextlib.suppress(Exception):
                settlement.ledger_written = await self.ledger.write(row)
        self.settler.add(run_id, settlement)
        if self.advances is not None and settlement.advance_id:
            self.advances.ended(
                run_id, settlement.advance_id, settlement.reserved_micros, row.cost_micros
            )
        if row.cost_micros > row.reserved_micros:
            # An overrun: the run must close the target before this client's next call can
            # reserve, so this settlement goes now, before the answer, not with the next batch.
            with contextlib.suppress(Exception):
                await self.settler.flush(run_id)
