"""The caller-side helper: send model calls through an ``AgentRun`` while the body stays here.

One ``Caller`` owns a task queue of its own and hosts the ``attempt_call`` activity on it. A call
parks its body in memory, asks the run's workflow (an update, with start when needed) to reserve
and pick targets, and the workflow sends each attempt back to this queue. The api uses it for
every request; a Python program uses it to drive a run from the Temporal client.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from caller.attempt import AttemptActivities, PendingCall
from providers.base import Provider
from workflows import errors
from workflows.agent_run import AgentRun
from workflows.budget import estimate_input_tokens
from workflows.contracts import (
    TASK_QUEUE,
    CallRequest,
    CallResult,
    RunInput,
    RunSpend,
    Target,
    WireFormat,
    workflow_id,
)
from workflows.visibility import initial_search_attributes

DRAIN_BACKOFF = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0)
"""Waits between tries while a run continues as new; each try costs the draining run a
workflow task, so callers back off instead of hammering it."""
DRAIN_RETRIES = 40
KEPT_REPLIES = 1024
KEPT_OPEN_RUNS = 10_000
V = TypeVar("V")


def run_handle(client: Client, run_id: str) -> WorkflowHandle[Any, RunSpend]:
    """The latest ``AgentRun`` of ``run_id``: query its spend, close it, top it up."""
    return client.get_workflow_handle(workflow_id(run_id), result_type=RunSpend)


class CallFailed(Exception):
    """A call that did not succeed; ``kind`` is one of ``workflows.errors``."""

    def __init__(self, kind: str, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = details or []


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


@dataclass
class CallReply:
    result: CallResult
    body: dict[str, Any] | None
    """The provider's answer in the caller's wire format (None for a stream)."""


def _failure(err: WorkflowUpdateFailedError) -> CallFailed:
    cause: BaseException | None = err.cause
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    if isinstance(cause, ApplicationError):
        return CallFailed(
            cause.type or errors.ALL_TARGETS_FAILED, cause.message, list(cause.details)
        )
    return CallFailed(errors.ALL_TARGETS_FAILED, str(err.cause or err))


class Caller:
    """Hosts this process's attempt activity and sends calls to runs."""

    def __init__(
        self,
        client: Client,
        providers: Mapping[str, Provider],
        *,
        task_queue: str | None = None,
        workflow_task_queue: str = TASK_QUEUE,
        max_concurrent_calls: int = 1000,
    ) -> None:
        self.client = client
        self.task_queue = task_queue or f"caller-{uuid.uuid4().hex}"
        self.workflow_task_queue = workflow_task_queue
        self.pending: dict[str, PendingCall] = {}
        self.replies: OrderedDict[str, CallReply] = OrderedDict()
        self._running_calls: dict[str, asyncio.Future[CallReply]] = {}
        self._open_runs: OrderedDict[str, None] = OrderedDict()
        """Runs this caller has seen running, so their next calls need no start attempt."""
        self.worker = Worker(
            client,
            task_queue=self.task_queue,
            activities=[AttemptActivities(providers, self.pending).attempt_call],
            max_concurrent_activities=max_concurrent_calls,
        )
        self._running: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Caller:
        self._running = asyncio.create_task(self.worker.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.worker.shutdown()
        if self._running:
            await self._running

    def request(self, spec: CallSpec, *, stream: bool) -> CallRequest:
        input_tokens = spec.input_tokens
        if input_tokens is None:
            input_tokens = estimate_input_tokens(spec.body)
        return CallRequest(
            call_id=spec.call_id or uuid.uuid4().hex,
            chain=spec.chain,
            input_tokens=input_tokens,
            max_tokens=spec.max_tokens,
            task_queue=self.task_queue,
            requested_model=spec.requested_model,
            tags=spec.tags,
            stream=stream,
        )

    async def call(self, run: RunInput | str, spec: CallSpec) -> CallReply:
        """A non-streaming call. ``run`` is a run id, or a ``RunInput`` to start it if needed."""
        req = self.request(spec, stream=False)
        kept = self.replies.get(req.call_id)
        if kept is not None:
            return kept
        # The same call id twice at once (a client retrying too early) shares the first call:
        # one body in ``pending``, one update, one answer for both.
        running = self._running_calls.get(req.call_id)
        if running is None:
            running = asyncio.ensure_future(self._call(run, req, spec))
            self._running_calls[req.call_id] = running
            running.add_done_callback(lambda _: self._running_calls.pop(req.call_id, None))
        return await asyncio.shield(running)

    async def _call(self, run: RunInput | str, req: CallRequest, spec: CallSpec) -> CallReply:
        pending = PendingCall(spec.body, spec.inbound, stream=False, headers=spec.headers)
        self.pending[req.call_id] = pending
        try:
            result = await self._update(run, req)
        finally:
            self.pending.pop(req.call_id, None)
        reply = CallReply(result, pending.reply.body if pending.reply else None)
        if spec.call_id:  # only a caller-chosen id can be sent again
            _remember(self.replies, req.call_id, reply, KEPT_REPLIES)
        return reply

    async def stream(self, run: RunInput | str, spec: CallSpec) -> CallStream:
        """A streaming call; returns once the first chunk arrived or the call ended.

        Waiting for the first chunk means a refusal (budget, bad call) still surfaces as an
        exception before any byte is sent, so the api can answer with a proper status.
        """
        req = self.request(spec, stream=True)
        pending = PendingCall(spec.body, spec.inbound, stream=True, headers=spec.headers)
        self.pending[req.call_id] = pending
        task = asyncio.create_task(self._update(run, req))
        task.add_done_callback(lambda _: self.pending.pop(req.call_id, None))
        call_stream = CallStream(req.call_id, pending, task)
        await call_stream.first()
        return call_stream

    async def _update(self, run: RunInput | str, req: CallRequest) -> CallResult:
        if isinstance(run, RunInput) and run.budget_micros <= 0:
            raise CallFailed(errors.BAD_CALL, f"budget must be positive, got {run.budget_micros}")
        for attempt in range(DRAIN_RETRIES):
            try:
                return await self._send(run, req)
            except WorkflowAlreadyStartedError:
                if isinstance(run, str):
                    raise
                run = await self._reopen(run)
                continue
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    raise CallFailed(
                        errors.RUN_NOT_OPEN, f"run {_run_id(run)} is not open"
                    ) from None
                raise CallFailed(errors.TEMPORAL_UNAVAILABLE, f"Temporal: {err.message}") from None
            except WorkflowUpdateRPCTimeoutOrCancelledError:
                raise CallFailed(
                    errors.TEMPORAL_UNAVAILABLE, "Temporal did not answer in time; retry"
                ) from None
            except WorkflowUpdateFailedError as err:
                failure = _failure(err)
                if failure.kind != errors.RUN_DRAINING:
                    raise failure from None
            await asyncio.sleep(DRAIN_BACKOFF[min(attempt, len(DRAIN_BACKOFF) - 1)])
        raise CallFailed(errors.RUN_DRAINING, "the run kept continuing as new; try again")

    async def _reopen(self, run: RunInput) -> RunInput:
        """A run that expired when idle reopens with its spend; a closed one stays closed."""
        handle = run_handle(self.client, run.run_id)
        try:
            last = await handle.result()
        except WorkflowFailureError as err:
            raise CallFailed(errors.RUN_NOT_OPEN, f"run {run.run_id} ended: {err.cause}") from None
        if last.status != "expired":
            raise CallFailed(errors.RUN_NOT_OPEN, f"run {run.run_id} is {last.status}")
        return replace(
            run,
            budget_micros=last.budget_micros,
            spent_before_micros=last.spent_micros,
            reopen=True,
        )

    async def _send(self, run: RunInput | str, req: CallRequest) -> CallResult:
        if isinstance(run, str):
            return await self._send_to_open(run, req)
        if run.run_id in self._open_runs and not run.reopen:
            # A plain update costs the server less than update-with-start (measured ~15% more
            # calls/s); a run that has since ended falls back to the start path below.
            try:
                return await self._send_to_open(run.run_id, req)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                self._open_runs.pop(run.run_id, None)
        start = WithStartWorkflowOperation(
            AgentRun.run,
            run,
            id=workflow_id(run.run_id),
            task_queue=self.workflow_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=initial_search_attributes(run),
            # A closed run is not silently restarted with a fresh budget: see ``_reopen``.
            id_reuse_policy=(
                WorkflowIDReusePolicy.ALLOW_DUPLICATE
                if run.reopen
                else WorkflowIDReusePolicy.REJECT_DUPLICATE
            ),
        )
        result = await self.client.execute_update_with_start_workflow(
            AgentRun.call_model, req, start_workflow_operation=start, id=req.call_id
        )
        _remember(self._open_runs, run.run_id, None, KEPT_OPEN_RUNS)
        return result

    async def _send_to_open(self, run_id: str, req: CallRequest) -> CallResult:
        handle = run_handle(self.client, run_id)
        return await handle.execute_update(AgentRun.call_model, req, id=req.call_id)


def _remember(kept: OrderedDict[str, V], key: str, value: V, limit: int) -> None:
    """Keep ``key`` as the newest entry, forgetting the oldest beyond ``limit``."""
    kept[key] = value
    kept.move_to_end(key)
    while len(kept) > limit:
        kept.popitem(last=False)


def _run_id(run: RunInput | str) -> str:
    return run if isinstance(run, str) else run.run_id


class CallStream:
    """The chunks of a streaming call as they arrive, then its settled ``result``."""

    def __init__(self, call_id: str, pending: PendingCall, task: asyncio.Task[CallResult]) -> None:
        self.call_id = call_id
        self.pending = pending
        self.task = task
        self._first: bytes | None = None

    async def first(self) -> None:
        """Wait for the first chunk; raise ``CallFailed`` if the call ends without one."""
        chunk = await self._next()
        if chunk is None:
            self.task.result()  # raises the failure, if any
        self._first = chunk

    async def _next(self) -> bytes | None:
        queue = self.pending.chunks
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

    async def result(self) -> CallResult:
        """The settled call; raises ``CallFailed`` when it failed."""
        return await self.task
