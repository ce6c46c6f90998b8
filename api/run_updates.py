"""Admin updates to a running run: resume it after the loop guard paused it, or approve more
budget (a run held at its cap goes on). Each answers with the run's figures and tells every
api instance's lines at once."""

from __future__ import annotations

from typing import Any, Self

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, model_validator
from sqlalchemy import Engine
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import require_admin
from api.body import HardenedRoute
from api.deps import EngineDep, TemporalClientDep
from api.errors import GatewayError, NotFound, Unavailable
from api.key_budgets import nudge_keepers
from api.runs import run_json
from caller.errors import update_failure
from db.models import Budget, budget_field
from workflows import errors
from workflows.agent_run import AgentRun
from workflows.contracts import Extend
from workflows.money import usd_to_micros
from workflows.run_contracts import RunSpend, workflow_id

router = APIRouter(
    prefix="/admin",
    tags=["runs"],
    dependencies=[Depends(require_admin)],
    route_class=HardenedRoute,
)


class RunExtend(BaseModel):
    """``POST /admin/runs/{id}/extend``: ``by_usd`` more, or a new cap (``budget_usd``)."""

    model_config = ConfigDict(extra="forbid")
    by_usd: Budget = budget_field()
    budget_usd: Budget = budget_field()

    @model_validator(mode="after")
    def _one_amount(self) -> Self:
        if (self.by_usd is None) == (self.budget_usd is None):
            raise ValueError("send by_usd (USD more) or budget_usd (a new cap), one of them")
        return self

    def extend(self) -> Extend:
        if self.by_usd is not None:
            return Extend(by_micros=usd_to_micros(self.by_usd))
        assert self.budget_usd is not None
        return Extend(budget_micros=usd_to_micros(self.budget_usd))


async def _update(client: Client, engine: Engine, run_id: str, update: Any, *args: Any) -> RunSpend:
    """Run one ``AgentRun`` update and nudge the run's lines; a refusal is the caller's 409 or
    400, a missing run a 404."""
    handle = client.get_workflow_handle(workflow_id(run_id))
    try:
        spend: RunSpend = await handle.execute_update(update, *args)
    except WorkflowUpdateFailedError as err:
        failure = update_failure(err).failure
        status = 409 if failure.kind == errors.RUN_NOT_OPEN else 400
        raise GatewayError(failure.message, status=status, code="cannot_update") from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no running run {run_id!r}") from None
        raise Unavailable(f"run {run_id!r} cannot be reached now; retry") from None
    await nudge_keepers(engine, [workflow_id(run_id)])
    return spend


async def extend_run(client: Client, engine: Engine, run_id: str, extend: Extend) -> RunSpend:
    """Raise a run's cap; a run paused at its cap goes on. Its lines hear of it at once, on
    every api instance, so the next call passes."""
    return await _update(client, engine, run_id, AgentRun.extend, extend)


@router.post("/runs/{run_id}/resume")
async def resume_run(run_id: str, client: TemporalClientDep, engine: EngineDep) -> dict[str, Any]:
    """Resume a run the loop guard paused, and reopen targets an overrun closed (its lines hear
    of it at once)."""
    return run_json(await _update(client, engine, run_id, AgentRun.resume), "workflow")


@router.post("/runs/{run_id}/extend")
async def extend(
    run_id: str, body: RunExtend, client: TemporalClientDep, engine: EngineDep
) -> dict[str, Any]:
    """Approve more budget for a run: ``{"by_usd": "5"}`` more, or ``{"budget_usd": "25"}``
    as its new cap. A run paused at its cap (keys with ``hold_at_cap``) goes on."""
    return run_json(await extend_run(client, engine, run_id, body.extend()), "workflow")
