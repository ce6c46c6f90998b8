"""Who may see the dashboard: the session dependencies, the CSRF check and their refusals.

A page asks for ``SignedInDep``; a form handler asks for ``CsrfDep`` as well, which checks the
form's ``csrf`` field (or the ``X-CSRF-Token`` header) against the session before any work.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import Engine

from api.settings import Settings
from api.ui.session import COOKIE, SessionSigner, UiSession
from api.ui.signed_out import SignedOutEverywhere

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class SignInRequired(Exception):
    """No signed-in session: pages redirect to the sign-in form."""


class CsrfRefused(Exception):
    """A POST without the session's CSRF token: refused with 403 before any change."""


class UiDisabled(Exception):
    """No admin key is configured, so nobody can sign in."""


class PageError(Exception):
    """A page that cannot be shown, answered as a small HTML page with ``status``."""

    status = 503
    title = "Unavailable"


class PageNotFound(PageError):
    """A key or run the dashboard was asked for does not exist."""

    status = 404
    title = "Not found"


def make_signer(settings: Settings, engine: Engine) -> SessionSigner | None:
    """The app's session signer, or ``None`` when no admin key is set (dashboard disabled).
    Sign-outs go to ``engine``'s database, so they hold on every api process."""
    if settings.admin_key is None or not settings.admin_key.get_secret_value():
        return None
    signed_out = SignedOutEverywhere(engine)
    return SessionSigner(settings.admin_key.get_secret_value(), signed_out=signed_out)


def get_signer(request: Request) -> SessionSigner:
    signer: SessionSigner | None = request.app.state.ui_signer
    if signer is None:
        raise UiDisabled
    return signer


SignerDep = Annotated[SessionSigner, Depends(get_signer)]


def current_session(request: Request, signer: SignerDep) -> UiSession | None:
    """The request's valid session, signed in or not."""
    return signer.read(request.cookies.get(COOKIE))


SessionOrNoneDep = Annotated[UiSession | None, Depends(current_session)]


def signed_in(session: SessionOrNoneDep) -> UiSession:
    """The signed-in session, else ``SignInRequired``."""
    if session is None or not session.admin:
        raise SignInRequired
    return session


SignedInDep = Annotated[UiSession, Depends(signed_in)]


async def checked_csrf(request: Request, signer: SignerDep, session: SessionOrNoneDep) -> None:
    """Refuse a POST whose CSRF token is missing or is not its session's."""
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if session is None or not signer.csrf_ok(session, token):
        raise CsrfRefused


CsrfDep = Annotated[None, Depends(checked_csrf)]

_DISABLED = "<h1>Dashboard disabled</h1><p>Set RUNCAP_ADMIN_KEY to sign in.</p>"
_CSRF = (
    "<h1>Form refused</h1><p>This form did not carry this session's security token (it may "
    'have expired). <a href="/ui">Reload the dashboard</a> and try again.</p>'
)


async def _on_sign_in_required(request: Request, exc: Exception) -> Response:
    if request.headers.get("hx-request"):
        # htmx swaps fragments: tell it to load the sign-in page instead.
        return Response(status_code=401, headers={"HX-Redirect": "/ui/login"})
    return RedirectResponse("/ui/login", status_code=303)


async def _on_csrf_refused(request: Request, exc: Exception) -> Response:
    return HTMLResponse(_CSRF, status_code=403)


async def _on_disabled(request: Request, exc: Exception) -> Response:
    return HTMLResponse(_DISABLED, status_code=503)


async def _on_page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    message = html.escape(str(exc))
    body = f'<h1>{exc.title}</h1><p>{message}</p><p><a href="/ui">Dashboard</a></p>'
    return HTMLResponse(body, status_code=exc.status)


def install_ui_errors(app: FastAPI) -> None:
    """Answer the dashboard's refusals as pages, not JSON."""
    app.add_exception_handler(SignInRequired, _on_sign_in_required)
    app.add_exception_handler(CsrfRefused, _on_csrf_refused)
    app.add_exception_handler(UiDisabled, _on_disabled)
    app.add_exception_handler(PageError, _on_page_error)
