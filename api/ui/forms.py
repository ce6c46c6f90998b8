"""HTML form values to admin-api models: blanks, lists and USD amounts as the api expects them.

Why through the api's own models: the dashboard then validates exactly as ``POST`` and
``PATCH /admin/keys`` do, and shows the same messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from api.errors import GatewayError
from db.models import RUN_BY, VirtualKey, VirtualKeyCreate, VirtualKeyUpdate
from workflows.money import micros_to_usd, share_text

BUDGETS = {
    "total": "budget_usd",
    "run": "budget_usd_per_run",
    "day": "budget_usd_per_day",
    "month": "budget_usd_per_month",
}
NUMBERS = ("max_parallel", "rpm", "tpm")
LISTS = ("models", "tags")


def _items(text: str) -> list[str]:
    """A comma- or whitespace-separated list."""
    return [item for item in text.replace(",", " ").split() if item]


def key_values(form: Mapping[str, Any], *, editing: bool) -> dict[str, Any]:
    """The form's fields as api values: a blank budget is none, a blank number is zero."""
    values: dict[str, Any] = {}
    name = str(form.get("name", "")).strip()
    if name or not editing:
        values["name"] = name
    for field in BUDGETS.values():
        amount = str(form.get(field, "")).strip().removeprefix("$")
        if amount:
            values[field] = amount
        elif editing:
            values[field] = None
    for field in NUMBERS:
        number = str(form.get(field, "")).strip()
        values[field] = number or "0"
    open_runs = str(form.get("max_open_runs", "")).strip()
    if open_runs:
        values["max_open_runs"] = open_runs
    for field in LISTS:
        values[field] = _items(str(form.get(field, "")))
    timezone = str(form.get("timezone", "")).strip()
    values["timezone"] = timezone or "UTC"
    values["run_by"] = [each for each in RUN_BY if form.get(f"run_by_{each}")]
    share = str(form.get("subagent_budget_share", "")).strip()
    if share:
        values["subagent_budget_share"] = share
    elif editing:
        values["subagent_budget_share"] = None
    values["hold_at_cap"] = bool(form.get("hold_at_cap"))  # an unticked box is not sent
    return values


def error_text(err: ValidationError | GatewayError) -> str:
    """The first problem, in one line, naming the field."""
    if isinstance(err, GatewayError):
        return err.message
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def parse_create(form: Mapping[str, Any]) -> VirtualKeyCreate:
    """The create form as ``POST /admin/keys`` would take it."""
    return VirtualKeyCreate.model_validate(key_values(form, editing=False))


def parse_update(form: Mapping[str, Any]) -> VirtualKeyUpdate:
    """The edit form as ``PATCH /admin/keys/{id}`` would take it: every field is sent."""
    return VirtualKeyUpdate.model_validate(key_values(form, editing=True))


def form_of(key: VirtualKey) -> dict[str, str]:
    """A stored key as the edit form's initial values."""

    def amount(micros: int | None) -> str:
        return "" if micros is None else micros_to_usd(micros)

    return {
        "name": key.name,
        "budget_usd": amount(key.budget_total_micros),
        "budget_usd_per_run": amount(key.budget_per_run_micros),
        "budget_usd_per_day": amount(key.budget_per_day_micros),
        "budget_usd_per_month": amount(key.budget_per_month_micros),
        "timezone": key.timezone,
        "max_parallel": str(key.max_parallel),
        "max_open_runs": str(key.max_open_runs),
        "rpm": str(key.rpm),
        "tpm": str(key.tpm),
        "models": ", ".join(key.models),
        "tags": ", ".join(key.tags),
        **{f"run_by_{each}": "on" if each in key.run_by else "" for each in RUN_BY},
        "subagent_budget_share": share_text(key.subagent_share_ppm) or "",
        "hold_at_cap": "on" if key.hold_at_cap else "",
    }
