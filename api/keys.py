"""Admin endpoints of virtual keys: create (secret shown once), list, read, edit, revoke.

Why only a hash is stored: a leaked database must not leak usable keys. A revoke or an edit
drops the key from this process's auth cache so it takes effect on the very next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from datetime import UTC
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.auth import KeyCache, KeyPolicy, hash_secret, new_secret, require_admin
from api.body import HardenedRoute
from api.deps import EngineDep, KeyCacheDep, SessionDep, TemporalClientDep
from api.errors import BadRequest, NotFound
from api.key_budgets import nudge_keepers, period_figures, push_policy
from api.tags import merge_tags
from db.models import (
    VirtualKey,
    VirtualKeyCreate,
    VirtualKeyCreated,
    VirtualKeyPublic,
    VirtualKeyUpdate,
    utcnow,
)
from workflows.agent_run import AgentRun
from workflows.contracts import Revoke
from workflows.money import PPM, micros_to_usd, share_text, usd_to_micros

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/admin/keys",
    tags=["keys"],
    dependencies=[Depends(require_admin)],
    route_class=HardenedRoute,
)


def _usd(micros: int | None) -> str | None:
    return None if micros is None else micros_to_usd(micros)


def _micros(usd: Decimal | None) -> int | None:
    return None if usd is None else usd_to_micros(usd)


def _ppm(share: Decimal | None) -> int | None:
    """A share (exact to the millionth) in millionths."""
    return None if share is None else int(share * PPM)


def key_public(key: VirtualKey) -> VirtualKeyPublic:
    """A key as shown by the admin api: no secret, no hash, money in USD."""
    created = key.created_at
    revoked = key.revoked_at
    return VirtualKeyPublic(
        id=key.id,
        name=key.name,
        key_prefix=key.key_prefix,
        budget_usd_per_run=_usd(key.budget_per_run_micros),
        budget_usd_per_day=_usd(key.budget_per_day_micros),
        budget_usd_per_month=_usd(key.budget_per_month_micros),
        budget_usd=_usd(key.budget_total_micros),
        timezone=key.timezone,
        max_parallel=key.max_parallel,
        rpm=key.rpm,
        tpm=key.tpm,
        models=list(key.models),
        tags=list(key.tags),
        loop_max_repeats=key.loop_max_repeats,
        loop_window_seconds=key.loop_window_seconds,
        max_open_runs=key.max_open_runs,
        run_by=list(key.run_by),
        subagent_budget_share=share_text(key.subagent_share_ppm),
        hold_at_cap=key.hold_at_cap,
        revoked=revoked is not None,
        # SQLite hands back naive times; every stored time is UTC.
        revoked_at=revoked.replace(tzinfo=UTC) if revoked and not revoked.tzinfo else revoked,
        created_at=created.replace(tzinfo=UTC) if not created.tzinfo else created,
    )


def create(session: Session, body: VirtualKeyCreate) -> VirtualKeyCreated:
    """Store a new key; the answer holds the secret, the only time it is shown."""
    tags = merge_tags(body.tags)
    secret = new_secret()
    key = VirtualKey(
        id="key_" + secrets.token_hex(8),
        name=body.name,
        key_hash=hash_secret(secret),
        key_prefix=secret[:8],
        budget_per_run_micros=_micros(body.budget_usd_per_run),
        budget_per_day_micros=_micros(body.budget_usd_per_day),
        budget_per_month_micros=_micros(body.budget_usd_per_month),
        budget_total_micros=_micros(body.budget_usd),
        timezone=body.timezone,
        max_parallel=body.max_parallel,
        rpm=body.rpm,
        tpm=body.tpm,
        models=list(body.models),
        tags=tags,
        loop_max_repeats=body.loop_max_repeats,
        loop_window_seconds=body.loop_window_seconds,
        max_open_runs=body.max_open_runs,
        run_by=list(body.run_by),
        subagent_share_ppm=_ppm(body.subagent_budget_share),
        hold_at_cap=body.hold_at_cap,
        created_at=utcnow(),
    )
    session.add(key)
    session.commit()
    session.refresh(key)
    return VirtualKeyCreated(**key_public(key).model_dump(), key=secret)


def get(session: Session, key_id: str) -> VirtualKey:
    """The key with this id, else ``NotFound``."""
    key = session.get(VirtualKey, key_id)
    if key is None:
        raise NotFound(f"no key {key_id!r}")
    return key


def all_keys(session: Session) -> list[VirtualKeyPublic]:
    """Every key, oldest first, without secrets."""
    keys = session.exec(select(VirtualKey).order_by(col(VirtualKey.created_at))).all()
    return [key_public(k) for k in keys]


BUDGET_COLUMNS = {
    "budget_usd": "budget_total_micros",
    "budget_usd_per_run": "budget_per_run_micros",
    "budget_usd_per_day": "budget_per_day_micros",
    "budget_usd_per_month": "budget_per_month_micros",
}
BOUNDING = ("budget_total_micros", "budget_per_day_micros", "budget_per_month_micros")
"""A key keeps at least one of these: its spend is always bounded."""
PLAIN_FIELDS = (
    "name",
    "max_parallel",
    "rpm",
    "tpm",
    "models",
    "timezone",
    "loop_max_repeats",
    "loop_window_seconds",
    "max_open_runs",
    "run_by",
    "hold_at_cap",
)


def changes_of(key: VirtualKey, body: VirtualKeyUpdate) -> dict[str, Any]:
    """The column values ``body`` sets, checked: no null where a value is needed, and the key
    keeps a bounded budget (a total, a day or a month cap)."""
    sent = body.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    for field in PLAIN_FIELDS:
        if field in sent:
            if sent[field] is None:
                raise BadRequest(f"{field} cannot be null", param=field)
            changes[field] = sent[field]
    if "tags" in sent:
        changes["tags"] = merge_tags(sent["tags"] or [])
    if "subagent_budget_share" in sent:
        changes["subagent_share_ppm"] = _ppm(body.subagent_budget_share)
    for field, column in BUDGET_COLUMNS.items():
        if field in sent:
            changes[column] = _micros(getattr(body, field))
    if all(changes.get(c, getattr(key, c)) is None for c in BOUNDING):
        raise BadRequest(
            "a key needs a bounded budget: keep budget_usd (its total), budget_usd_per_day or "
            "budget_usd_per_month",
            param="budget_usd",
        )
    return changes


def update(session: Session, cache: KeyCache, key_id: str, body: VirtualKeyUpdate) -> VirtualKey:
    """Apply an edit and drop the key from the auth cache, so the next call sees it."""
    key = get(session, key_id)
    for column, value in changes_of(key, body).items():
        setattr(key, column, value)
    session.add(key)
    session.commit()
    session.refresh(key)
    cache.invalidate(key.id)
    return key


def revoke(session: Session, cache: KeyCache, key_id: str) -> VirtualKey:
    """Mark the key revoked (idempotent) and drop it from the auth cache."""
    key = get(session, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        session.commit()
        session.refresh(key)
    cache.invalidate(key.id)
    return key


@router.post("", status_code=201)
def create_key(body: VirtualKeyCreate, session: SessionDep) -> VirtualKeyCreated:
    """Create a key; the answer holds the secret, which is never shown again."""
    return create(session, body)


@router.get("")
def list_keys(session: SessionDep) -> dict[str, list[VirtualKeyPublic]]:
    """Every key, oldest first, without secrets."""
    return {"keys": all_keys(session)}


@router.get("/{key_id}")
async def get_key(key_id: str, session: SessionDep, engine: EngineDep) -> dict[str, Any]:
    """One key, without its secret, with each current period's spent, held and remaining."""
    key = await asyncio.to_thread(get, session, key_id)
    periods = await asyncio.to_thread(period_figures, engine, KeyPolicy.of(key))
    return {**key_public(key).model_dump(mode="json"), "periods": periods}


@router.patch("/{key_id}")
async def update_key(
    key_id: str,
    body: VirtualKeyUpdate,
    session: SessionDep,
    cache: KeyCacheDep,
    temporal: TemporalClientDep,
    engine: EngineDep,
) -> VirtualKeyPublic:
    """Edit a key's name, budgets, limits, models or tags; the next call sees the change.

    Its running runs and its current periods take the new caps before this answers.
    """
    key = await asyncio.to_thread(update, session, cache, key_id, body)
    await push_policy(temporal, engine, KeyPolicy.of(key))
    return key_public(key)


@router.post("/{key_id}/revoke")
def revoke_key(
    key_id: str,
    session: SessionDep,
    cache: KeyCacheDep,
    temporal: TemporalClientDep,
    engine: EngineDep,
    background: BackgroundTasks,
) -> VirtualKeyPublic:
    """Revoke a key (idempotent): its next call is refused, other keys are untouched.

    Its open runs are revoked too, after the answer, so they show as revoked in the Temporal UI
    and hand nothing more out; the refusal itself does not wait on them.
    """
    key = revoke(session, cache, key_id)
    background.add_task(revoke_runs, temporal, engine, key.id)
    return key_public(key)


async def revoke_runs(temporal: Client, engine: Engine, key_id: str) -> None:
    """Send ``revoke`` to every running ``AgentRun`` of the key (a run that just ended is fine),
    and nudge their lines so every api instance hands their money back at once."""
    query = f'KeyId = "{key_id}" AND ExecutionStatus = "Running"'
    revoked = []
    try:
        async for run in temporal.list_workflows(query):
            handle = temporal.get_workflow_handle(run.id)
            with contextlib.suppress(WorkflowUpdateFailedError, RPCError):
                await handle.execute_update(AgentRun.revoke, Revoke("key revoked"))
                revoked.append(run.id)
    except RPCError:
        log.warning("could not list the runs of revoked key %s", key_id, exc_info=True)
    await nudge_keepers(engine, revoked)
