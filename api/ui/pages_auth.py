"""Signing in to the dashboard with the admin key, and signing out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from api.deps import SettingsDep
from api.ui.guard import CsrfDep, SessionOrNoneDep, SignedInDep, SignerDep
from api.ui.render import page, set_session_cookie
from api.ui.session import SIGNED_IN_SECONDS, SIGNED_OUT_SECONDS

router = APIRouter()
HOME = "/ui/runs"


@router.get("/")
def home() -> Response:
    """The dashboard opens on the runs."""
    return RedirectResponse(HOME, status_code=303)


@router.get("/login")
def login_form(request: Request, signer: SignerDep, session: SessionOrNoneDep) -> Response:
    """The sign-in form; a visitor without a session gets a signed-out one for its CSRF token."""
    if session is not None and session.admin:
        return RedirectResponse(HOME, status_code=303)
    fresh = None
    if session is None:
        session, fresh = signer.new(admin=False)
    response = page(request, "login.html", {"error": None}, session=session)
    if fresh is not None:
        set_session_cookie(response, request, fresh, SIGNED_OUT_SECONDS)
    return response


@router.post("/login")
def login(
    request: Request,
    _csrf: CsrfDep,
    signer: SignerDep,
    session: SessionOrNoneDep,
    settings: SettingsDep,
    admin_key: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Check the admin key; on success start a new signed-in session (a new id: no fixation)."""
    expected = settings.admin_key.get_secret_value() if settings.admin_key else ""
    if not expected or not signer.admin_key_ok(admin_key.strip(), expected):
        error = "That is not the admin key."
        return page(request, "login.html", {"error": error}, session=session, status=401)
    if session is not None:
        signer.sign_out(session)
    _, token = signer.new(admin=True)
    response = RedirectResponse(HOME, status_code=303)
    set_session_cookie(response, request, token, SIGNED_IN_SECONDS)
    return response


@router.post("/logout")
def logout(request: Request, _csrf: CsrfDep, signer: SignerDep, session: SignedInDep) -> Response:
    """End the session here and in the browser."""
    signer.sign_out(session)
    response = RedirectResponse("/ui/login", status_code=303)
    set_session_cookie(response, request, "", 0)
    return response
