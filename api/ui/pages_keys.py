"""The keys pages: list, create (the secret shown once), edit budgets and limits, revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api import keys
from api.auth import KeyPolicy
from api.deps import EngineDep, KeyCacheDep, SessionDep, TemporalClientDep
from api.errors import GatewayError, NotFound
from api.key_budgets import period_figures, push_policy
from api.ui.forms import error_text, form_of, parse_create, parse_update
from api.ui.guard import CsrfDep, PageNotFound, SignedInDep
from api.ui.render import page
from api.ui.session import UiSession
from db.models import VirtualKey

router = APIRouter()
NEW_KEY_FORM = {
    "timezone": "UTC",
    "max_parallel": "0",
    "rpm": "0",
    "tpm": "0",
    "run_by_task": "on",
    "run_by_session": "on",
}


def _keys_page(
    request: Request,
    db: SessionDep,
    session: UiSession,
    *,
    created: Any = None,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "nav": "keys",
        "keys": keys.all_keys(db),
        "created": created,
        "error": error,
        "form": form or NEW_KEY_FORM,
        "saved": request.query_params.get("saved"),
    }
    return page(request, "keys.html", context, session=session, status=status)


@router.get("/keys")
def keys_page(request: Request, db: SessionDep, session: SignedInDep) -> Response:
    """Every key with its budgets and limits, and the form that makes a new one."""
    return _keys_page(request, db, session)


@router.post("/keys")
async def create_key(
    request: Request, _csrf: CsrfDep, db: SessionDep, session: SignedInDep
) -> Response:
    """Create a key and show its secret, this once, with a copy button."""
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf"}
    try:
        created = await run_in_threadpool(keys.create, db, parse_create(form))
    except (ValidationError, GatewayError) as err:
        error = error_text(err)
        return await run_in_threadpool(
            lambda: _keys_page(request, db, session, error=error, form=form, status=400)
        )
    return await run_in_threadpool(
        lambda: _keys_page(request, db, session, created=created, status=201)
    )


def _edit_page(
    request: Request,
    session: UiSession,
    db: Session,
    key: VirtualKey,
    form: dict[str, str],
    error: str | None = None,
    status: int = 200,
) -> Response:
    engine = db.get_bind()
    assert isinstance(engine, Engine)
    periods = period_figures(engine, KeyPolicy.of(key))
    context = {
        "nav": "keys",
        "key": keys.key_public(key),
        "form": form,
        "error": error,
        "periods": periods,
    }
    return page(request, "key_edit.html", context, session=session, status=status)


@router.get("/keys/{key_id}")
def edit_form(key_id: str, request: Request, db: SessionDep, session: SignedInDep) -> Response:
    """A key's budgets and limits, ready to edit."""
    key = _key_or_404(db, key_id)
    return _edit_page(request, session, db, key, form_of(key))


@router.post("/keys/{key_id}")
async def edit_key(
    key_id: str,
    request: Request,
    _csrf: CsrfDep,
    db: SessionDep,
    cache: KeyCacheDep,
    temporal: TemporalClientDep,
    engine: EngineDep,
    session: SignedInDep,
) -> Response:
    """Save an edit (as ``PATCH /admin/keys/{id}``): its running runs and current periods take
    the new caps before the answer, and its next call sees it."""
    key = await run_in_threadpool(_key_or_404, db, key_id)
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf"}
    try:
        edited = await run_in_threadpool(keys.update, db, cache, key_id, parse_update(form))
    except (ValidationError, GatewayError) as err:
        db.rollback()
        return _edit_page(request, session, db, key, form, error_text(err), status=400)
    await push_policy(temporal, engine, KeyPolicy.of(edited))
    return RedirectResponse(f"/ui/keys?saved={key_id}", status_code=303)


@router.post("/keys/{key_id}/revoke")
def revoke_key(
    key_id: str,
    _csrf: CsrfDep,
    db: SessionDep,
    cache: KeyCacheDep,
    temporal: TemporalClientDep,
    engine: EngineDep,
    background: BackgroundTasks,
    session: SignedInDep,
) -> Response:
    """Revoke a key and, after the answer, its open runs (as the admin api does)."""
    _key_or_404(db, key_id)
    key = keys.revoke(db, cache, key_id)
    background.add_task(keys.revoke_runs, temporal, engine, key.id)
    return RedirectResponse("/ui/keys", status_code=303)


def _key_or_404(db: Session, key_id: str) -> VirtualKey:
    try:
        return keys.get(db, key_id)
    except NotFound:
        raise PageNotFound(f"no key {key_id!r}") from None
