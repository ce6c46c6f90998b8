"""What a virtual key may read of its own runs: ``GET /v1/runcap/run`` (the run its calls with
these headers land in) and ``GET /v1/runcap/runs/{run_id}``. ``runcap statusline`` asks them.

Why a key's own routes: an agent's status line holds only the agent's key, never the admin
key. The agent is not trusted, so a key reads its own runs and nothing else: the run of
``/v1/runcap/run`` is built from the key's own id exactly as a call's is, and a named run must
be one of the key's (its id is the key's id, or starts with it and a run separator; a key id is
``key_`` and hex, so no other key's runs match). Another key's run is a 404, as is a run that
does not exist: the answer never says which.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Engine
from temporalio.client import Client

from api.agent_identity import agent_call
from api.auth import KeyPolicy
from api.deps import EngineDep, SettingsDep, TemporalClientDep, VirtualKeyDep
from api.errors import NotFound
from api.gateway import run_for
from api.runs import run_view
from api.tags import TAG_HEADER, call_tags
from workflows.run_ids import MAX_RUN_ID, SUBAGENT

router = APIRouter(prefix="/v1/runcap", tags=["own runs"])
QUERY_TIMEOUT = timedelta(milliseconds=500)
"""A status line asks often and waits about a second: a run that cannot answer live within
this shows its ledger figures as ``stale`` instead."""
RUN_SEPARATORS = ".@" + SUBAGENT
"""What follows a key's id in its runs' ids: a task's ``.``, a session's ``@``, a sub-agent's
``~`` (``workflows/run_ids.py``)."""


def owns(key: KeyPolicy, run_id: str) -> bool:
    """Whether ``run_id`` is a run of ``key`` (no longer than a run id can be)."""
    if run_id == key.id:
        return True
    mine = run_id.startswith(key.id) and run_id[len(key.id)] in RUN_SEPARATORS
    return mine and len(run_id) <= MAX_RUN_ID


async def _view(client: Client, engine: Engine, run_id: str) -> dict[str, Any]:
    try:
        return await run_view(client, engine, run_id, QUERY_TIMEOUT)
    except NotFound:
        raise NotFound(f"no run {run_id!r} of this key yet") from None


@router.get("/run")
async def current_run(
    request: Request,
    key: VirtualKeyDep,
    settings: SettingsDep,
    engine: EngineDep,
    client: TemporalClientDep,
) -> dict[str, Any]:
    """The run a model call sending these headers would land in (its ``x-runcap-tags`` and the
    agent's session headers), with its spend, budget, burn rate and forecast."""
    agent = agent_call(request.headers)
    tags = call_tags({}, request.headers.get(TAG_HEADER), key.tags, agent.tags())
    run_id = run_for(key, tags, settings, agent)[0].run_id
    return await _view(client, engine, run_id)


@router.get("/runs/{run_id}")
async def own_run(
    run_id: str, key: VirtualKeyDep, engine: EngineDep, client: TemporalClientDep
) -> dict[str, Any]:
    """One of this key's runs, with its spend, budget, burn rate and forecast."""
    if not owns(key, run_id):
        raise NotFound(f"no run {run_id!r} of this key yet")
    return await _view(client, engine, run_id)
