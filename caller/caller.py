"""``Caller``: make model calls through ``AgentRun`` from any process outside a workflow.

Far from its caps a call costs no Temporal round trip: it holds its worst case against this
process's lines at its run and its key's periods (``caller.lending``), writes its intent, walks
the chain itself and answers at once; what it spent reaches its keepers in reports a few
seconds later. The body and the answer never leave this process. The api serves every request
with one ``Caller``; a Python program uses one to drive a run from the Temporal client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine
from temporalio.client import Client

from caller.call import Admission, CallReply, CallStream, GrantedCall, StreamEnd
from caller.errors import CallFailed
from caller.journal import Journal
from caller.keepers import TemporalKeepers
from caller.lending import Lending
from caller.lines import (
    Ending,
    Hold,
    LocalLine,
    wall_now,
)
from caller.runs import RunOpener, keepers_of, run_id_of
from caller.walk import Walk, WalkPolicy
from db.journal import Intent
from providers.base import Provider, ProviderCall, StreamProgress
from telemetry.genai import CallObserver, CallTrace
from workflows import errors
from workflows.budget import estimate_input_tokens, reservation_micros
from workflows.calls import call_problem
from workflows.contracts import TASK_QUEUE, LedgerRow, Target, Usage, WireFormat
from workflows.lending_contracts import CallNeed
from workflows.run_contracts import RunInput

T = TypeVar("T")
DEADLINE_MARGIN_SECONDS = 5.0
"""The walk stops this long before the call's deadline, so the caller records how it ended."""
NUDGE_POLL_SECONDS = 0.1


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
    """Holds calls against this process's lines, walks chains, records calls, reports them."""

    def __init__(
        self,
        client: Client,
        providers: Mapping[str, Provider],
        *,
        engine: Engine | None = None,
        workflow_task_queue: str = TASK_QUEUE,
        policy: WalkPolicy | None = None,
        report_every: float = 5.0,
        caller_timeout: float = 30.0,
        line_idle: float = 60.0,
        caller_id: str | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self.providers = providers
        self.policy = policy or WalkPolicy()
        self.caller_id = caller_id or f"caller-{uuid.uuid4().hex[:12]}"
        self.journal = Journal(engine) if engine is not None else None
        """Without a database, runs write the ledger rows, and a crash bills whole lines."""
        self.keepers = TemporalKeepers(client, workflow_task_queue)
        self.lending = Lending(
            self.caller_id,
            self.keepers,
            journaled=self.journal is not None,
            nudge=self.journal.nudge if self.journal is not None else None,
            report_every=report_every,
            heartbeat=caller_timeout / 3,
            fresh_for=caller_timeout * 2 / 3,
            idle_after=line_idle,
        )
        self.opener = RunOpener(self.journal, self.keepers, self.lending) if self.journal else None
        if self.opener is not None:
            self.keepers.reopened = self.opener.reopened
        self.observer = observer
        """Told how each granted call ended (the api's metrics)."""

    async def __aenter__(self) -> Caller:
        await self.lending.start()
        if self.journal is not None:
            self.journal.listen(self._nudged, NUDGE_POLL_SECONDS)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.opener is not None:
            await self.opener.close()
        await self.lending.stop()
        if self.journal is not None:
            await self.journal.close()

    async def flush(self, *, hand_back: bool = False) -> None:
        """Report what this process's calls spent to their keepers now (``hand_back``: and hand
        every line's unused room back), rather than within ``report_every``."""
        await self.lending.flush(hand_back=hand_back)

    def _nudged(self, keeper_id: str) -> None:
        """Another process needs room this one holds unused at ``keeper_id``: hand it back."""
        line = self.lending.lines.get(keeper_id)
        if line is not None and (line.room > 0 or not line.news.empty()):
            asyncio.get_running_loop().create_task(self.lending.report(keeper_id, hand_back=True))

    async def call(
        self, run: RunInput | str, spec: CallSpec, parents: Sequence[RunInput] = ()
    ) -> CallReply:
        """A non-streaming call. ``run`` is a run id, or a ``RunInput`` to start it if needed;
        ``parents``, for a sub-agent's run, its parent's input and up (see ``RunOpener``)."""
        call_trace = self._trace(run, spec, stream=False)
        with call_trace.opening():
            granted = await self._grant(run, spec, call_trace, parents)
            return await self._bounded(granted, granted.complete())

    async def stream(
        self, run: RunInput | str, spec: CallSpec, parents: Sequence[RunInput] = ()
    ) -> CallStream:
        """A streaming call; returns once the first chunk arrived or the call ended.

        Waiting for the first chunk means a refusal or a chain that failed before any byte
        still surfaces as ``CallFailed``, so the api can answer with a proper status.
        """
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        async def sink(chunk: bytes) -> None:
            queue.put_nowait(chunk)

        call_trace = self._trace(run, spec, stream=True)
        with call_trace.opening():
            granted = await self._grant(run, spec, call_trace, parents, sink=sink)
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
        parents: Sequence[RunInput] = (),
        sink: Any = None,
    ) -> GrantedCall:
        """Hold the call's worst case at its keepers and write its intent: after this, it may
        go out."""
        input_tokens = spec.input_tokens
        if input_tokens is None:
            input_tokens = estimate_input_tokens(spec.body)
        now = wall_now()
        lineage: Sequence[RunInput] | str = run if isinstance(run, str) else [run, *parents]
        need = CallNeed(
            call_id=spec.call_id or uuid.uuid4().hex,
            chain=spec.chain,
            input_tokens=input_tokens,
            max_tokens=spec.max_tokens,
            min_output_tokens=run.min_output_tokens if isinstance(run, RunInput) else 16,
            fingerprint=spec.fingerprint,
            tags=list(spec.tags),
        )
        problem = call_problem(need.call_id, need.chain, input_tokens, need.max_tokens)
        if problem:
            raise CallFailed.of(errors.BAD_CALL, problem)
        if isinstance(run, RunInput) and run.budget_micros <= 0:
            raise CallFailed.of(
                errors.BAD_CALL, f"budget must be positive, got {run.budget_micros}"
            )
        if isinstance(run, RunInput) and self.opener is not None:
            per_call = reservation_micros(spec.chain, input_tokens, spec.max_tokens)
            lineage = await self.opener.open(run, per_call, now, parents)
            run = lineage[0]  # a sub-agent nested too deep runs as its parent
        hold = await self.lending.reserve(keepers_of(lineage, now), need)
        now = hold.started(now)
        run_line = hold.run_line
        call_timeout = run.call_timeout_seconds if isinstance(run, RunInput) else 900
        grant = _admission(hold, run_line, now + timedelta(seconds=call_timeout))
        key_id = run.key_id if isinstance(run, RunInput) else ""
        if self.journal is not None:
            first = hold.chain[0]
            intent = Intent(
                call_id=hold.call_id,
                run_id=run_id_of(run),
                key_id=key_id,
                caller_id=self.caller_id,
                reserved_micros=hold.amount,
                started_at=now,
                tags=list(spec.tags),
                requested_model=spec.requested_model,
                provider=first.provider,
                model=first.model,
            )
            if not await self.journal.intend(intent):
                for line, micros in hold.lines:
                    line.release(micros)
                raise CallFailed.of(
                    errors.TEMPORAL_UNAVAILABLE, "the journal could not be written; retry"
                )
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
                max_tokens=hold.max_tokens,
                headers=spec.headers,
                first_byte_timeout=timeout,
                progress=progress,
            )

        walk = Walk(hold.chain, self.providers, make_call, self.policy, sink=sink)
        return GrantedCall(
            run_id=run_id_of(run),
            key_id=key_id,
            tags=list(spec.tags),
            requested_model=spec.requested_model,
            input_tokens=input_tokens,
            grant=grant,
            walk=walk,
            progress=progress,
            record=self._record,
            trace=call_trace,
            hold=hold,
            started_at=now,
        )

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

    async def _record(self, granted: GrantedCall, row: LedgerRow, known: bool) -> None:
        """Write the call's row (its intent goes with it) and tell its lines how it ended."""
        row.caller_id = self.caller_id
        written = False
        if self.journal is not None:
            with contextlib.suppress(Exception):
                written = await self.journal.record(row)
        target = next(
            (t for t in granted.hold.chain if (t.provider, t.model) == (row.provider, row.model)),
            None,
        )
        ending = Ending(
            cost=row.cost_micros,
            ok=row.status != "failed",
            usage=row.usage,
            tags=row.tags,
            model=row.model or row.requested_model,
            target=target,
            max_tokens=granted.grant.max_tokens,
            row=None if written else row,
        )
        if self.lending.ended(granted.hold, ending):
            # An overrun: the run must close the target before this client's next call can
            # hold, so its report goes now, before the answer, not a few seconds later.
            run_line = granted.hold.run_line
            if run_line is not None:
                with contextlib.suppress(Exception):
                    await self.lending.report(run_line.keeper.workflow_id)


def _admission(hold: Hold, run_line: LocalLine | None, deadline: datetime) -> Admission:
    """The call's grant, with the run's figures as this process knows them (its own spend not
    yet reported included; other processes' last few seconds not)."""
    budget = spent = remaining = 0
    if run_line is not None:
        budget = run_line.cap
        spent = run_line.spent + run_line.unacked + run_line.news.spent
        remaining = max(budget - spent - run_line.in_flight, 0)
    return Admission(
        call_id=hold.call_id,
        chain=hold.chain,
        max_tokens=hold.max_tokens,
        reserved_micros=hold.amount,
        deadline=deadline.isoformat(),
        budget_micros=budget,
        spent_micros=spent,
        remaining_micros=remaining,
    )
