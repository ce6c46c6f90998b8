"""``runcap``: manage keys and watch spend, runs and calls from a terminal.

Every command reads the api's address from ``--api-url`` / ``RUNCAP_API_URL`` and the admin key
from ``--admin-key`` / ``RUNCAP_ADMIN_KEY`` / ``.runcap/admin_key``, and reports a failure as
one line on stderr with exit status 1.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

import typer
from rich.console import Console

# Typer bundles its own click; its usage errors are importable only from there (the tests
# would catch a move).
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from cli import statusline as status
from cli import tables
from cli.args import parse_since, short_time
from cli.client import DEFAULT_API_URL, Api, CliError, admin_key_of
from cli.tail import call_line, follow

app = typer.Typer(
    help="runcap: virtual keys, spend, runs and calls of an LLM gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
keys_app = typer.Typer(help="Create, list and revoke virtual keys.", no_args_is_help=True)
runs_app = typer.Typer(
    help="Open and recent runs; `runs show ID` for one, `runs extend ID --by USD` to approve more."
)
app.add_typer(keys_app, name="keys")
app.add_typer(runs_app, name="runs")
out = Console(highlight=False, soft_wrap=False)
F = TypeVar("F", bound=Callable[..., Any])
Period = Literal["total", "run", "day", "month"]
GroupBy = Literal["key", "task", "step", "agent", "model", "provider", "run", "day"]


def clear_errors(command: F) -> F:
    """Report a ``CliError`` as ``runcap: <what failed>`` and exit 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CliError as error:
            print(f"runcap: {error}", file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def connect(
    ctx: typer.Context,
    api_url: Annotated[
        str, typer.Option(envvar="RUNCAP_API_URL", help="The runcap api.")
    ] = DEFAULT_API_URL,
    admin_key: Annotated[
        str | None,
        typer.Option(envvar="RUNCAP_ADMIN_KEY", help="Default: .runcap/admin_key."),
    ] = None,
) -> None:
    """Remember where the api is; the key is looked up when a command needs it."""
    ctx.obj = (api_url, admin_key)


def api_of(ctx: typer.Context) -> Api:
    url, key = ctx.obj
    return Api(url, admin_key_of(key))


@keys_app.command("create")
@clear_errors
def keys_create(
    ctx: typer.Context,
    name: str,
    budget: Annotated[str, typer.Option(help="USD, e.g. 20 or 0.50.")],
    per: Annotated[
        Period, typer.Option(help="The budget's period: the key's total, or a day or month.")
    ] = "total",
    per_run: Annotated[
        str | None, typer.Option(help="USD: also cap each run (a task, a session) at this.")
    ] = None,
    max_open_runs: Annotated[int, typer.Option(help="Runs open at once.")] = 100,
    rpm: Annotated[int, typer.Option(help="Requests per minute; 0 is unlimited.")] = 0,
    tpm: Annotated[int, typer.Option(help="Tokens per minute; 0 is unlimited.")] = 0,
    max_parallel: Annotated[int, typer.Option(help="Parallel calls; 0 is unlimited.")] = 0,
    model: Annotated[list[str] | None, typer.Option(help="An allowed model (repeat).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A default tag (repeat).")] = None,
    timezone: Annotated[str, typer.Option(help="IANA zone of day/month budgets.")] = "UTC",
    run_by: Annotated[
        list[str] | None,
        typer.Option(help="What makes a run: task, session (repeat; default both)."),
    ] = None,
    subagent_share: Annotated[
        str | None,
        typer.Option(help="Cap a sub-agent at this share (0 to 1) of its parent's room left."),
    ] = None,
    hold_at_cap: Annotated[
        bool,
        typer.Option(
            help="A run at its --per-run cap pauses until you approve more (runs extend), "
            "rather than refuse for good."
        ),
    ] = False,
) -> None:
    """Create a key; its secret is printed this once."""
    body: dict[str, Any] = {
        "name": name,
        BUDGET_FIELDS[per]: budget,
        "max_open_runs": max_open_runs,
        "rpm": rpm,
        "tpm": tpm,
        "max_parallel": max_parallel,
        "models": model or [],
        "tags": tag or [],
        "timezone": timezone,
        "hold_at_cap": hold_at_cap,
    }
    if per_run is not None:
        body["budget_usd_per_run"] = per_run
    if run_by is not None:
        body["run_by"] = run_by
    if subagent_share is not None:
        body["subagent_budget_share"] = subagent_share
    key = api_of(ctx).post("/admin/keys", body)
    run_cap = f", ${key['budget_usd_per_run']} per run" if key.get("budget_usd_per_run") else ""
    span = "in all" if per == "total" else f"per {per}"
    out.print(f"Created {key['id']} ({key['name']}): ${budget_of(key, per)} {span}{run_cap}")
    out.print("Secret (shown once, keep it now):", markup=False)
    print(key["key"])


BUDGET_FIELDS = {
    "total": "budget_usd",
    "run": "budget_usd_per_run",
    "day": "budget_usd_per_day",
    "month": "budget_usd_per_month",
}


def budget_of(key: dict[str, Any], per: str) -> str:
    return str(key.get(BUDGET_FIELDS[per]))


@keys_app.command("list")
@clear_errors
def keys_list(ctx: typer.Context) -> None:
    """Every key with its budgets and limits (never a secret)."""
    out.print(tables.keys_table(api_of(ctx).get("/admin/keys")["keys"]))


@keys_app.command("show")
@clear_errors
def keys_show(ctx: typer.Context, key_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """A key's current periods: what is spent, held by calls in flight, and remaining."""
    out.print(tables.periods_table(api_of(ctx).get(f"/admin/keys/{quote(key_id, safe='')}")))


@keys_app.command("revoke")
@clear_errors
def keys_revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a key: its next call is refused and its open runs are revoked."""
    key = api_of(ctx).post(f"/admin/keys/{quote(key_id, safe='')}/revoke")
    out.print(f"Revoked {key['id']} ({key['name']}) at {short_time(key['revoked_at'])} UTC")


@app.command("spend")
@clear_errors
def spend(
    ctx: typer.Context,
    by: Annotated[GroupBy, typer.Option(help="How to group the spend.")] = "key",
    task: Annotated[str | None, typer.Option(help="Only this task (tag task:ID).")] = None,
    step: Annotated[str | None, typer.Option(help="Only this step (tag step:NAME).")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent (tag agent:NAME).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only calls with this tag.")] = None,
    since: Annotated[str | None, typer.Option(help="30m, 12h, 1d, 7d or an ISO time.")] = None,
) -> None:
    """Spend grouped by key, task, step, agent, model or provider."""
    tags = list(tag or [])
    for prefix, value in (("task", task), ("step", step), ("agent", agent)):
        if value:
            tags.append(f"{prefix}:{value}")
    start = parse_since(since).isoformat() if since else None
    body = api_of(ctx).get("/admin/spend", group_by=by, tag=tags, since=start)
    out.print(tables.spend_table(body, by))


@runs_app.callback(invoke_without_command=True)
@clear_errors
def runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many runs.")] = 30,
) -> None:
    """Open runs (live figures) and the most recently closed."""
    if ctx.invoked_subcommand is not None:
        return
    body = api_of(ctx).get("/admin/runs", source="temporal", limit=limit)
    out.print(tables.runs_table(body["runs"]))


@runs_app.command("show")
@clear_errors
def runs_show(ctx: typer.Context, run_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """One run: its budget, spend by step and model, and its latest calls."""
    api = api_of(ctx)
    path = f"/admin/runs/{quote(run_id, safe='')}"
    run = api.get(path)
    calls = api.get(f"{path}/calls", limit=20)["calls"]
    out.print(
        f"Run {run['run_id']}  [{run['status']}]  spent ${run['spent_usd']}  "
        f"reserved ${run['reserved_usd']}  remaining ${run['remaining_usd']}  "
        f"of ${run['budget_usd']}  ·  {run['calls']} calls ({run['failed_calls']} failed)",
        markup=False,
    )
    if run.get("parent_run_id"):
        out.print(f"A sub-agent of {run['parent_run_id']}", markup=False)
    for child in run.get("children", []):
        out.print(
            f"  ↳ {child['run_id']}  spent ${child['spent_usd']}  ·  {child['calls']} calls",
            markup=False,
        )
    out.print(tables.breakdown_table("By step", run["by_step"]))
    out.print(tables.breakdown_table("By model", run["by_model"]))
    out.print(tables.calls_table(calls))


@runs_app.command("extend")
@clear_errors
def runs_extend(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="ID")],
    by: Annotated[str | None, typer.Option("--by", help="USD more, e.g. 5 or 0.50.")] = None,
    budget: Annotated[
        str | None, typer.Option("--budget", help="USD: the run's new cap instead.")
    ] = None,
) -> None:
    """Approve more budget for a run: a run paused at its cap goes on at once."""
    if (by is None) == (budget is None):
        raise CliError("give --by USD (more) or --budget USD (a new cap), one of them")
    body = {"by_usd": by} if by is not None else {"budget_usd": budget}
    run = api_of(ctx).post(f"/admin/runs/{quote(run_id, safe='')}/extend", body)
    out.print(
        f"Run {run['run_id']}  [{run['status']}]  cap ${run['budget_usd']}  "
        f"spent ${run['spent_usd']}  remaining ${run['remaining_usd']}",
        markup=False,
    )


@app.command("tail")
@clear_errors
def tail(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Recent calls to show first.")] = 10,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    count: Annotated[int, typer.Option(help="Stop after this many lines (0: never).")] = 0,
) -> None:
    """Follow calls as they settle: time, run, model, cost, status, tags."""
    printed = 0
    try:
        for call in follow(api_of(ctx), backlog=max(lines, 0), interval=interval):
            print(call_line(call), flush=True)
            printed += 1
            if count and printed >= count:
                return
    except KeyboardInterrupt:
        return


@app.command("statusline")
def statusline() -> None:
    """One line for Claude Code's statusLine setting: the run's spent and budget, its burn rate
    and when its cap is reached at that rate. Reads Claude Code's JSON on stdin, and the gateway
    and key from ANTHROPIC_BASE_URL and ANTHROPIC_AUTH_TOKEN/ANTHROPIC_API_KEY (or RUNCAP_BASE_URL
    and RUNCAP_KEY); always exits 0."""
    status.main()


def main() -> None:
    """The ``runcap`` script: usage errors too are one line (``runcap: ...``), exit 2."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as usage:
        usage.show()
        code = usage.exit_code
    except ClickException as usage:
        print(f"runcap: {usage.format_message()}", file=sys.stderr)
        code = usage.exit_code
    except typer.Abort:
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
