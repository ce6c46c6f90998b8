"""Rich tables of the admin api's answers; money stays the api's exact USD strings."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from cli.args import short_time


def _usd(value: str | None) -> str:
    return "-" if value is None else f"${value}"


def keys_table(keys: list[dict[str, Any]]) -> Table:
    table = Table(title="Keys", title_justify="left")
    columns = ("id", "name", "total", "per run", "per day", "per month", "limits", "tags", "state")
    for column in columns:
        table.add_column(column, justify="right" if column[:3] in ("per", "tot") else "left")
    for key in keys:
        limits = [
            f"{key[f]} {label}"
            for f, label in (("max_parallel", "parallel"), ("rpm", "rpm"), ("tpm", "tpm"))
            if key.get(f)
        ]
        table.add_row(
            key["id"],
            key["name"],
            _usd(key.get("budget_usd")),
            _usd(key.get("budget_usd_per_run")),
            _usd(key.get("budget_usd_per_day")),
            _usd(key.get("budget_usd_per_month")),
            ", ".join(limits) or "none",
            ", ".join(key.get("tags", [])),
            "revoked" if key.get("revoked") else "active",
        )
    return table


def periods_table(key: dict[str, Any]) -> Table:
    """A key's current periods: cap, spent, held by calls in flight, remaining."""
    table = Table(title=f"{key['id']} ({key['name']}) now", title_justify="left")
    for column in ("cap", "period", "limit", "spent", "held", "remaining", "resets"):
        table.add_column(
            column, justify="right" if column in ("limit", "spent", "held", "remaining") else "left"
        )
    for period in key.get("periods", []):
        table.add_row(
            period["kind"],
            period["period"],
            _usd(period["cap_usd"]),
            _usd(period["spent_usd"]),
            _usd(period["held_usd"]),
            _usd(period["remaining_usd"]),
            short_time(period["resets_at"]) if period.get("resets_at") else "never",
        )
    return table


def spend_table(body: dict[str, Any], by: str) -> Table:
    table = Table(title=f"Spend by {by}", title_justify="left", show_footer=True)
    table.add_column(by, footer="total")
    table.add_column("calls", justify="right", footer=str(body["total_calls"]))
    table.add_column("cost", justify="right", footer=_usd(body["total_cost_usd"]))
    table.add_column("input tokens", justify="right")
    table.add_column("output tokens", justify="right")
    for row in body["rows"]:
        table.add_row(
            row["group"],
            str(row["calls"]),
            _usd(row["cost_usd"]),
            str(row["input_tokens"]),
            str(row["output_tokens"]),
        )
    return table


def runs_table(runs: list[dict[str, Any]]) -> Table:
    table = Table(title="Runs (open first)", title_justify="left")
    for column in ("run", "status", "spent", "reserved", "remaining", "cap", "calls"):
        table.add_column(column, justify="left" if column in ("run", "status") else "right")
    for column in ("agent", "task", "started"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run["run_id"],
            run["status"] + (" (live)" if run.get("live") else ""),
            _usd(run["spent_usd"]),
            _usd(run["reserved_usd"]),
            _usd(run["remaining_usd"]),
            _usd(run["budget_usd"]),
            str(run["calls"]),
            run.get("agent") or "-",
            run.get("task_id") or "-",
            short_time(run.get("started_at")),
        )
    return table


def breakdown_table(title: str, rows: dict[str, dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(title.split()[-1])
    for column in ("calls", "cost", "input tokens", "output tokens"):
        table.add_column(column, justify="right")
    for name, row in sorted(rows.items()):
        table.add_row(
            name,
            str(row["calls"]),
            _usd(row["cost_usd"]),
            str(row["input_tokens"]),
            str(row["output_tokens"]),
        )
    return table


def calls_table(calls: list[dict[str, Any]]) -> Table:
    table = Table(title="Latest calls", title_justify="left")
    for column in ("started", "status", "model", "cost", "tokens in/out", "tags"):
        table.add_column(column, justify="right" if column == "cost" else "left")
    for call in calls:
        table.add_row(
            short_time(call["started_at"]),
            call["status"],
            call["model"],
            _usd(call["cost_usd"]),
            f"{call['input_tokens']}/{call['output_tokens']}",
            ",".join(call["tags"]),
        )
    return table
