"""Rendering dashboard pages: one Jinja2 environment, the filters money and times need, and the
headers every page carries.

Why these headers: the pages show key secrets once and budgets always, so they are never
cached, never framed (clickjacking), and run only the scripts served from here (CSP).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.templating import Jinja2Templates

from api.settings import Settings
from api.ui.session import COOKIE, COOKIE_PATH, SessionSigner, UiSession
from workflows.money import micros_to_usd

HERE = Path(__file__).parent
NONE = "\u2013"
"""Shown for a missing amount or time (an en dash)."""
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def usd(micros: int | None) -> str:
    """Micro-dollars as ``$1.234567``; a missing amount as a dash."""
    if micros is None:
        return NONE
    return "$" + micros_to_usd(micros)


def when(moment: datetime | None) -> str:
    """A time as ``2025-03-01 12:00:05 UTC``."""
    if moment is None:
        return NONE
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.strftime("%Y-%m-%d %H:%M:%S UTC")


templates.env.filters["usd"] = usd
templates.env.filters["when"] = when


def temporal_link(settings: Settings, workflow_id: str) -> str | None:
    """The run's workflow in the Temporal UI, when its address is configured."""
    if not settings.temporal_ui_url:
        return None
    base = settings.temporal_ui_url.rstrip("/")
    return f"{base}/namespaces/{settings.temporal().namespace}/workflows/{workflow_id}"


def page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    session: UiSession | None,
    status: int = 200,
) -> Response:
    """A template rendered with the session's CSRF token and the dashboard's headers."""
    signer: SessionSigner = request.app.state.ui_signer
    values = {
        "csrf": signer.csrf_token(session) if session else "",
        "signed_in": bool(session and session.admin),
        **context,
    }
    response = templates.TemplateResponse(request, name, values, status_code=status)
    response.headers.update(HEADERS)
    return response


def set_session_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    """HttpOnly (no script reads it), SameSite=Strict (no other site sends it), path /ui;
    Secure when the browser's request was https: as the request came (behind a proxy, one
    trusted through ``RUNCAP_FORWARDED_ALLOW_IPS``), or ``RUNCAP_PUBLIC_URL`` says so."""
    public_url = request.app.state.settings.public_url or ""
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or public_url.startswith("https://"),
    )
