"""The real Claude Code CLI, unchanged and with no runcap header of its own: its sessions are
runs, and its sub-agents (its ``Agent`` tool, scripted through the fake provider) are child
runs that roll up to their session's run.

Invariants: each run's workflow equals its ledger, a parent's its whole tree's, so no call is
counted twice and none is missing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.agent_clis import CLAUDE_CODE, ensure
from tests.gateway.conftest import Gateway, settled_spend
from tests.gateway.test_agent_clis import QUIET_CLAUDE, run_cli
from tests.gateway.test_sessions import tags_of, tree_ledger, tree_settled
from tests.polling import eventually


def claude_env(gateway: Gateway, home: Path, key: dict[str, Any], **more: str) -> dict[str, str]:
    return {
        **QUIET_CLAUDE,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.base_url,
        "ANTHROPIC_API_KEY": key["key"],
        **more,
    }


async def key_runs(gateway: Gateway, key_id: str, count: int) -> list[dict[str, Any]]:
    """The key's runs in the ledger, once there are ``count``."""

    async def listed() -> list[dict[str, Any]] | None:
        answer = await gateway.admin.get("/admin/runs", params={"key_id": key_id})
        runs: list[dict[str, Any]] = answer.json()["runs"]
        return runs if len(runs) >= count else None

    runs: list[dict[str, Any]] | None = await eventually(listed, within=20)
    assert runs is not None, f"key {key_id} never had {count} runs"
    return runs


async def test_two_claude_code_sessions_on_one_key_are_two_runs(
    gateway: Gateway, home: Path
) -> None:
    """Two `claude -p` sessions on one key, no task tag: two runs named by their session ids,
    each with its own spend, equal to its ledger."""
    claude = await asyncio.to_thread(ensure, CLAUDE_CODE)
    key = await gateway.create_key(budget_usd="20", budget_usd_per_run="5")
    project = home.parent / "project"
    project.mkdir()
    for prompt in ("say hello", "say goodbye"):
        code, out, err = await run_cli(
            [str(claude), "-p", prompt], project, claude_env(gateway, home, key)
        )
        assert code == 0, f"stdout: {out}\nstderr: {err}"
    runs = await key_runs(gateway, key["id"], 2)
    assert len(runs) == 2 and all(r["run_id"].startswith(key["id"] + "@") for r in runs)
    for run in runs:
        spend = await settled_spend(gateway, run["run_id"])
        calls, cost = await asyncio.to_thread(tree_ledger, gateway, run["run_id"])
        assert spend.calls == calls == run["calls"] and spend.spent_micros == cost > 0
        session = run["run_id"].split("@", 1)[1]
        assert {f"session:{session}", "agent:claude-code"} <= tags_of(gateway, run["run_id"])


async def test_claude_code_subagent_is_a_child_run_that_rolls_up(
    gateway: Gateway, home: Path
) -> None:
    """With the gateway hint headers on, Claude Code's Agent tool starts a sub-agent whose calls
    land in a child run of the session's run; the session's run counts them once."""
    claude = await asyncio.to_thread(ensure, CLAUDE_CODE)
    key = await gateway.create_key(budget_usd="20", budget_usd_per_run="5")
    project = home.parent / "project"
    project.mkdir()
    agent = {
        "description": "look around",
        "prompt": "list what is in this project",
        "subagent_type": "general-purpose",
    }
    await gateway.fake.script("*", tool_call={"name": "Agent", "arguments": agent, "times": 1})
    env = claude_env(gateway, home, key, CLAUDE_CODE_GATEWAY_HINT_HEADERS="1")
    try:
        code, out, err = await run_cli([str(claude), "-p", "explore the project"], project, env)
    finally:
        await gateway.fake.reset()
    assert code == 0, f"stdout: {out}\nstderr: {err}"
    runs = await key_runs(gateway, key["id"], 2)
    [parent] = [r for r in runs if r["parent_run_id"] is None]
    children = [r for r in runs if r["parent_run_id"] == parent["run_id"]]
    assert children, runs
    assert all(r["run_id"].startswith(parent["run_id"] + "~") for r in children)
    spend = await tree_settled(gateway, parent["run_id"])
    calls, cost = await asyncio.to_thread(tree_ledger, gateway, parent["run_id"])
    assert spend.calls == calls == parent["calls"] + sum(r["calls"] for r in children)
    assert spend.spent_micros == cost
    assert "agent:general-purpose" in tags_of(gateway, children[0]["run_id"])
    view = (await gateway.admin.get(f"/admin/runs/{parent['run_id']}")).json()
    assert {c["run_id"] for c in view["children"]} == {r["run_id"] for r in children}
