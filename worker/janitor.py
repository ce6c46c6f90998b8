"""The worker's janitor: starts runs whose opener died before starting them, and forgets old
nudges. Every few seconds, a few cheap statements; nothing here is on a call's path.

Why a run may need starting: the api instance that opens a run holds its first line at once
and starts the run's workflow in the background. If it dies in between, the run's calls that
went out are in the journal, and the workflow, once started from its ``runs`` row, bills them
(its opener is silent) like any crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.converter import value_to_type

from db.journal import forget_nudges, mark_started, unstarted_runs
from workflows.agent_run import AgentRun
from workflows.run_contracts import RunInput, workflow_id
from workflows.visibility import initial_search_attributes

log = logging.getLogger(__name__)
EVERY_SECONDS = 5.0
UNSTARTED_AFTER = timedelta(seconds=10)
"""An opener starts its run within a second or two; a run still unstarted after this is an
orphan."""
NUDGES_KEPT_MS = 60_000


async def tidy(client: Client, engine: Engine, task_queue: str) -> int:
    """One pass; returns how many runs it started."""
    started = 0
    opened_before = datetime.now(UTC) - UNSTARTED_AFTER
    for row in await asyncio.to_thread(unstarted_runs, engine, opened_before):
        if row.start_input is None:
            await asyncio.to_thread(mark_started, engine, row.run_id)
            continue
        run = value_to_type(RunInput, row.start_input, [])
        await client.start_workflow(
            AgentRun.run,
            run,
            id=workflow_id(run.run_id),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=initial_search_attributes(run),
        )
        await asyncio.to_thread(mark_started, engine, row.run_id)
        started += 1
    now_ms = int(time.time() * 1000)
    await asyncio.to_thread(forget_nudges, engine, now_ms - NUDGES_KEPT_MS)
    return started


async def janitor(client: Client, engine: Engine, task_queue: str) -> None:
    """``tidy`` every few seconds until cancelled; a failed pass is logged and tried again."""
    while True:
        await asyncio.sleep(EVERY_SECONDS)
        try:
            if started := await tidy(client, engine, task_queue):
                log.warning("started %d runs their openers left unstarted", started)
        except Exception:
            log.warning("janitor pass failed", exc_info=True)
