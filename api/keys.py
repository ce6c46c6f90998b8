"""Admin endpoints of virtual keys: create (secret shown once), list, read, revoke.

Why only a hash is stored: a leaked database must not leak usable keys. A revoke drops the key
from this process's auth cache so it fails on the very next call.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from datetime import UTC

from fastapi import APIRouter, BackgroundTasks, Depends
from sqlmodel import col, select
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.auth import hash_secret, new_secret, require_admin
from api.body import HardenedRoute
from api.deps import KeyCacheDep, SessionDep, TemporalClientDep
from api.errors import BadRequest, NotFound
from api.tags import merge_tags
from db.models import (
    VirtualKey,
    VirtualKeyCreate,
    VirtualKeyCreated,
    VirtualKeyPublic,
    utcnow,
)
from providers.pricing import micros_to_usd, usd_to_micros
from workflows.agent_run import AgentRun
from workflows.contracts import Revoke

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/admin/keys",
    tags=["keys"],
    dependencies=[Depends(require_admin)],
    route_class=HardenedRoute,
)


def key_public(key: VirtualKey) -> VirtualKeyPublic:
    """A key as shown by the admin api: no secret, no hash, money in USD."""
    created = key.created_at
    revoked = key.revoked_at
    return VirtualKeyPublic(
        id=key.id,
        name=key.name,
        key_prefix=key.key_prefix,
        budget_usd=micros_to_usd(key.budget_micros),
        max_parallel=key.max_parallel,
        rpm=key.rpm,
        tpm=key.tpm,
        models=list(key.models),
        tags=list(key.tags),
        revoked=revoked is not None,
        # SQLite hands back naive times; every stored time is UTC.
        revoked_at=revoked.replace(tzinfo=UTC) if revoked and not revoked.tzinfo else revoked,
        created_at=created.replace(tzinfo=UTC) if not created.tzinfo else created,
    )


@router.post("", status_code=201)
def create_key(body: VirtualKeyCreate, session: SessionDep) -> VirtualKeyCreated:
    """Create a key; the answer holds the secret, which is never shown again."""
    tags = merge_tags(body.tags)
    budget = usd_to_micros(body.budget_usd)
    if budget <= 0:
        raise BadRequest("budget_usd must be positive", param="budget_usd")
    secret = new_secret()
    key = VirtualKey(
        id="key_" + secrets.token_hex(8),
        name=body.name,
        key_hash=hash_secret(secret),
        key_prefix=secret[:8],
        budget_micros=budget,
        max_parallel=body.max_parallel,
        rpm=body.rpm,
        tpm=body.tpm,
        models=list(body.models),
        tags=tags,
        created_at=utcnow(),
    )
    session.add(key)
    session.commit()
    session.refresh(key)
    return VirtualKeyCreated(**key_public(key).model_dump(), key=secret)


@router.get("")
def list_keys(session: SessionDep) -> dict[str, list[VirtualKeyPublic]]:
    """Every key, oldest first, without secrets."""
    keys = session.exec(select(VirtualKey).order_by(col(VirtualKey.created_at))).all()
    return {"keys": [key_public(k) for k in keys]}


def _get(session: SessionDep, key_id: str) -> VirtualKey:
    key = session.get(VirtualKey, key_id)
    if key is None:
        raise NotFound(f"no key {key_id!r}")
    return key


@router.get("/{key_id}")
def get_key(key_id: str, session: SessionDep) -> VirtualKeyPublic:
    """One key, without its secret."""
    return key_public(_get(session, key_id))


@router.post("/{key_id}/revoke")
def revoke_key(
    key_id: str,
    session: SessionDep,
    cache: KeyCacheDep,
    temporal: TemporalClientDep,
    background: BackgroundTasks,
) -> VirtualKeyPublic:
    """Revoke a key (idempotent): its next call is refused, other keys are untouched.

    Its open runs are revoked too, after the answer, so they show as revoked in the Temporal UI
    and hand nothing more out; the refusal itself does not wait on them.
    """
    key = _get(session, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        session.commit()
        session.refresh(key)
    cache.invalidate(key.id)
    background.add_task(revoke_runs, temporal, key.id)
    return key_public(key)


async def revoke_runs(temporal: Client, key_id: str) -> None:
    """Send ``revoke`` to every running ``AgentRun`` of the key; a run that just ended is fine."""
    query = f'KeyId = "{key_id}" AND ExecutionStatus = "Running"'
    try:
        async for run in temporal.list_workflows(query):
            handle = temporal.get_workflow_handle(run.id)
            with contextlib.suppress(WorkflowUpdateFailedError, RPCError):
                await handle.execute_update(AgentRun.revoke, Revoke("key revoked"))
    except RPCError:
        log.warning("could not list the runs of revoked key %s", key_id, exc_info=True)
