"""The runs pages: open and recent runs with a live burn-down each, and one run with its calls
and the form that approves more budget for it.

Live without reload: the table body and the run's figures are htmx fragments that poll every
two seconds while the run is open (``hx-trigger="every 2s"``, swapped whole); a closed run's
fragment comes back without the trigger, so polling stops by itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import Client

from api.alerts import recent_alerts
from api.calls import run_calls
from api.deps import EngineDep, SettingsDep, TemporalClientDep
from api.errors import GatewayError, NotFound
from api.forecast import WINDOW, run_forecast
from api.run_list import recent_runs
from api.run_updates import RunExtend, extend_run
from api.runs import run_family, run_spend
from api.settings import Settings
from api.ui.forms import error_text
from api.ui.guard import CsrfDep, PageError, PageNotFound, SignedInDep
from api.ui.render import page, temporal_link
from api.ui.session import UiSession
from db.journal import parents_of
from db.models import LedgerEntryPublic, VirtualKey
from workflows.run_contracts import (
    RunSpend,
    workflow_id,
)

router = APIRouter()
RUNS_SHOWN = 50
CALLS_SHOWN = 50


@dataclass(frozen=True)
class Burn:
    """A run's budget split for the bar: spent, reserved and remaining, in micro-dollars."""

    budget: int
    spent: int
    reserved: int

    @property
    def remaining(self) -> int:
        return max(self.budget - self.spent - self.reserved, 0)

    def _share(self, micros: int) -> str:
        # A CSS width, not money: hundredths of a percent, computed on integers.
        if self.budget <= 0:
            return "0"
        basis = min(micros * 10_000 // self.budget, 10_000)
        return f"{basis // 100}.{basis % 100:02d}"

    @property
    def spent_pct(self) -> str:
        return self._share(self.spent)

    @property
    def reserved_pct(self) -> str:
        return self._share(min(self.reserved, max(self.budget - self.spent, 0)))


def key_names(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        return {k.id: k.name for k in session.exec(select(VirtualKey))}


async def _rows_context(engine: Engine, client: Client, settings: Settings) -> dict[str, object]:
    rows, names = await asyncio.gather(
        recent_runs(client, engine, RUNS_SHOWN), asyncio.to_thread(key_names, engine)
    )
    parents = await asyncio.to_thread(parents_of, engine, [row.run_id for row in rows])
    return {
        "parents": parents,
        "runs": [
            (row, Burn(row.budget_micros, row.spent_micros, row.reserved_micros)) for row in rows
        ],
        "names": names,
        "links": {row.workflow_id: temporal_link(settings, row.workflow_id) for row in rows},
        "polling": any(row.closed_at is None for row in rows),
    }


@router.get("/runs")
async def runs_page(
    request: Request,
    engine: EngineDep,
    client: TemporalClientDep,
    settings: SettingsDep,
    session: SignedInDep,
) -> Response:
    """Open runs first, then recent ones, each with its budget bar."""
    context = {"nav": "runs", **await _rows_context(engine, client, settings)}
    return page(request, "runs.html", context, session=session)


@router.get("/runs/rows")
async def runs_rows(
    request: Request,
    engine: EngineDep,
    client: TemporalClientDep,
    settings: SettingsDep,
    session: SignedInDep,
) -> Response:
    """The runs table body alone, for polling."""
    context = await _rows_context(engine, client, settings)
    return page(request, "_runs_rows.html", context, session=session)


def _ledger_bits(engine: Engine, run_id: str) -> tuple[list[LedgerEntryPublic], list[object]]:
    with engine.connect() as conn:
        calls = run_calls(conn, run_id, CALLS_SHOWN)
    with Session(engine) as session:
        alerts: list[object] = list(recent_alerts(session, 20, run_id))
    return calls, alerts


async def _run_context(engine: Engine, client: Client, run_id: str) -> dict[str, object]:
    try:
        spend, source = await run_spend(client, engine, run_id)
    except NotFound:
        raise PageNotFound(f"no run {run_id!r}") from None
    except GatewayError as err:  # its workflow cannot be queried right now
        raise PageError(err.message) from None
    (calls, alerts), family, forecast = await asyncio.gather(
        asyncio.to_thread(_ledger_bits, engine, run_id),
        asyncio.to_thread(run_family, engine, run_id),
        asyncio.to_thread(run_forecast, engine, spend),
    )
    return {
        "family": family,
        "run_id": run_id,
        "spend": spend,
        "source": source,
        "burn": _burn(spend),
        "forecast": forecast,
        "window_minutes": WINDOW // timedelta(minutes=1),
        "calls": calls,
        "alerts": alerts,
        "live": source == "workflow" and spend.status in ("open", "paused"),
    }


def _burn(spend: RunSpend) -> Burn:
    return Burn(spend.budget_micros, spend.spent_micros, spend.reserved_micros)


@router.get("/runs/{run_id}")
async def run_page(
    run_id: str,
    request: Request,
    engine: EngineDep,
    client: TemporalClientDep,
    settings: SettingsDep,
    session: SignedInDep,
) -> Response:
    """One run: its live budget, spend by step and model, its calls and its alerts."""
    approved = request.query_params.get("approved")
    return await _run_page(request, engine, client, settings, session, run_id, approved=approved)


async def _run_page(
    request: Request,
    engine: Engine,
    client: Client,
    settings: Settings,
    session: UiSession,
    run_id: str,
    *,
    approved: str | None = None,
    error: str | None = None,
) -> Response:
    context = {
        "nav": "runs",
        "temporal_link": temporal_link(settings, workflow_id(run_id)),
        "approved": approved,
        "error": error,
        **await _run_context(engine, client, run_id),
    }
    return page(request, "run.html", context, session=session, status=400 if error else 200)


@router.post("/runs/{run_id}/extend")
async def approve(
    run_id: str,
    request: Request,
    _csrf: CsrfDep,
    engine: EngineDep,
    client: TemporalClientDep,
    settings: SettingsDep,
    session: SignedInDep,
) -> Response:
    """Approve more budget for a run (as ``POST /admin/runs/{id}/extend``): its cap rises, and
    a run paused at its cap goes on; every api instance hears of it at once."""
    amount = str((await request.form()).get("by_usd", "")).strip().removeprefix("$")
    try:
        body = RunExtend.model_validate({"by_usd": amount or None})
        await extend_run(client, engine, run_id, body.extend())
    except (ValidationError, GatewayError) as err:
        return await _run_page(
            request, engine, client, settings, session, run_id, error=error_text(err)
        )
    where = quote(run_id, safe="")
    return RedirectResponse(f"/ui/runs/{where}?approved={quote(amount)}", status_code=303)


@router.get("/runs/{run_id}/live")
async def run_live(
    run_id: str,
    request: Request,
    engine: EngineDep,
    client: TemporalClientDep,
    session: SignedInDep,
) -> Response:
    """The run's figures alone, for polling."""
    context = await _run_context(engine, client, run_id)
    return page(request, "_run_live.html", context, session=session)
