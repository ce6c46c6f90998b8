"""Sessions and sub-agents are runs, through the real gateway with the SDKs sending the headers
Claude Code and Codex send (the CLIs themselves: ``test_agent_sessions``).

Invariants: each run's workflow equals its ledger (a parent's: its whole tree's); a sub-agent's
spent plus held never passes its share of what its parent had left; no call is charged twice
(the tree's ledger sum is the parent's spend, not parent plus children)."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import anthropic

from caller import run_handle
from db.journal import run_tree
from tests.gateway.conftest import Gateway, settled_spend
from tests.gateway.test_sdks import MESSAGES, claude, ledger_total, oai, settled
from tests.polling import eventually
from workflows.agent_run import AgentRun
from workflows.contracts import MICROS_PER_USD
from workflows.run_contracts import RunSpend

AGENT = "a890ffa6c6c5db74e"


def claude_headers(session: str, agent: str = "") -> dict[str, str]:
    """What Claude Code 2.1.332 sent with CLAUDE_CODE_GATEWAY_HINT_HEADERS=1."""
    headers = {
        "x-claude-code-session-id": session,
        "x-claude-code-request-class": "subagent" if agent else "main",
        "x-app": "cli",
    }
    if agent:
        headers |= {"x-claude-code-agent-id": agent, "x-claude-code-agent-type": "Explore"}
    return headers


async def ask(client: anthropic.AsyncAnthropic, headers: dict[str, str], **extra: Any) -> str:
    """One Messages call with the agent's headers; the cost runcap billed for it."""
    raw = await client.messages.with_raw_response.create(
        model="fake-small", max_tokens=64, messages=MESSAGES, extra_headers=headers, **extra
    )
    return str(raw.headers["x-runcap-cost-usd"])


def tags_of(gateway: Gateway, run_id: str) -> set[str]:
    with gateway.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT DISTINCT t.tag FROM ledger_tags t JOIN ledger l ON l.call_id = t.call_id"
            " WHERE l.run_id = ?",
            (run_id,),
        )
        return {row[0] for row in rows}


def tree_ledger(gateway: Gateway, run_id: str) -> tuple[int, int]:
    """Calls and cost of a run and its sub-agents' runs, from the ledger."""
    with gateway.engine.connect() as conn:
        tree = run_tree(conn, run_id)
    counts = [ledger_total(gateway, each) for each in tree]
    return sum(c for c, _ in counts), sum(t for _, t in counts)


async def tree_settled(gateway: Gateway, run_id: str) -> RunSpend:
    """The parent's workflow once it heard of every call of its tree the ledger has."""

    async def query() -> RunSpend | None:
        spend: RunSpend = await run_handle(gateway.temporal, run_id).query(AgentRun.spend)
        calls, _ = await asyncio.to_thread(tree_ledger, gateway, run_id)
        return spend if spend.calls == calls and not spend.in_flight_micros else None

    spend = await eventually(query, within=20)
    assert spend is not None, f"run {run_id} never heard of its tree's calls"
    return spend


async def test_two_claude_code_sessions_on_one_key_are_two_runs(gateway: Gateway) -> None:
    """Two sessions on one key, no task tag: two runs, each with its own spend equal to its
    ledger, tagged with its session and agent; spend per session is one query."""
    key = await gateway.create_key(budget_usd="5", budget_usd_per_run="1")
    client = claude(gateway, key["key"])
    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    for session, calls in ((one, 2), (two, 1)):
        for _ in range(calls):
            await ask(client, claude_headers(session))
    for session, calls in ((one, 2), (two, 1)):
        run_id = f"{key['id']}@{session}"
        total = await settled(gateway, run_id, calls)
        spend = await settled_spend(gateway, run_id)
        assert (spend.calls, spend.spent_micros) == (calls, total)
        assert spend.budget_micros == MICROS_PER_USD  # each session has the key's run cap
        assert {f"session:{session}", "agent:claude-code"} <= tags_of(gateway, run_id)
    assert ledger_total(gateway, key["id"]) == (0, 0)  # nothing fell to the key's own run
    for session, calls in ((one, 2), (two, 1)):
        query = {"group_by": "tag:session", "tag": f"session:{session}"}
        [row] = (await gateway.admin.get("/admin/spend", params=query)).json()["rows"]
        assert (row["group"], row["calls"]) == (f"session:{session}", calls)


async def test_a_task_tag_wins_and_run_by_picks_what_makes_a_run(gateway: Gateway) -> None:
    """A task tag beats the session; a key with ``run_by: ["task"]`` ignores sessions (one run
    for the key); ``run_by`` is validated and can be changed."""
    session = str(uuid.uuid4())
    key = await gateway.create_key(budget_usd="5")
    client = claude(gateway, key["key"])
    await ask(client, claude_headers(session), extra_body={"metadata": {"tags": ["task:t1"]}})
    await settled(gateway, f"{key['id']}.t1", 1)

    by_task = await gateway.create_key(budget_usd="5", run_by=["task"])
    assert by_task["run_by"] == ["task"]
    await ask(claude(gateway, by_task["key"]), claude_headers(session))
    await settled(gateway, by_task["id"], 1)
    assert f"session:{session}" in tags_of(gateway, by_task["id"])  # still attributed

    bad = await gateway.admin.post("/admin/keys", json={"name": "x", "run_by": ["user"]})
    assert bad.status_code == 422 and "run_by" in bad.text
    patched = await gateway.admin.patch(f"/admin/keys/{by_task['id']}", json={"run_by": []})
    assert patched.status_code == 200 and patched.json()["run_by"] == []


async def test_codex_session_and_compaction_turn(gateway: Gateway) -> None:
    """Codex's session headers make its run; a compaction turn is tagged request:compaction and
    billed in the same run."""
    key = await gateway.create_key(budget_usd="5")
    session = str(uuid.uuid4())
    client = oai(gateway, key["key"])
    for kind in ("turn", "compaction"):
        meta = {"session_id": session, "thread_id": session, "agent_name": "/root"}
        headers = {
            "session-id": session,
            "thread-id": session,
            "x-codex-turn-metadata": json.dumps({**meta, "request_kind": kind}),
        }
        await client.responses.create(model="fake-small", input="hello", extra_headers=headers)
    run_id = f"{key['id']}@{session}"
    await settled(gateway, run_id, 2)
    spend = await settled_spend(gateway, run_id)
    assert spend.calls == 2
    assert {f"session:{session}", "agent:codex", "request:compaction"} <= tags_of(gateway, run_id)


async def test_a_subagent_is_a_child_run_that_rolls_up_to_its_parent(gateway: Gateway) -> None:
    """A sub-agent's calls land in a child run; the parent's workflow counts them once (its
    spend is the tree's ledger sum), and the run views show the tree both ways."""
    key = await gateway.create_key(budget_usd="5", budget_usd_per_run="1")
    client = claude(gateway, key["key"])
    session = str(uuid.uuid4())
    parent, child = f"{key['id']}@{session}", f"{key['id']}@{session}~{AGENT}"
    await ask(client, claude_headers(session))
    for _ in range(2):
        await ask(client, claude_headers(session, AGENT))
    await ask(client, claude_headers(session))
    await settled(gateway, child, 2)
    await settled(gateway, parent, 2)
    calls, cost = await asyncio.to_thread(tree_ledger, gateway, parent)
    assert calls == 4
    spend = await tree_settled(gateway, parent)
    assert spend.spent_micros == cost  # the child's calls counted once, in the parent's figure
    child_spend = await settled_spend(gateway, child)
    assert child_spend.calls == 2 and child_spend.spent_micros == ledger_total(gateway, child)[1]
    assert "agent:Explore" in tags_of(gateway, child)

    view = (await gateway.admin.get(f"/admin/runs/{parent}")).json()
    assert Decimal(view["spent_usd"]) * MICROS_PER_USD == cost and view["calls"] == 4
    [listed] = view["children"]
    assert listed["run_id"] == child and listed["calls"] == 2
    child_view = (await gateway.admin.get(f"/admin/runs/{child}")).json()
    assert child_view["parent_run_id"] == parent and child_view["children"] == []
    runs = (await gateway.admin.get("/admin/runs", params={"key_id": key["id"]})).json()["runs"]
    assert {r["run_id"]: r["parent_run_id"] for r in runs} == {parent: None, child: parent}


async def test_a_subagent_share_caps_it_and_leaves_its_parent_room(gateway: Gateway) -> None:
    """With ``subagent_budget_share: 0.25``, a sub-agent that loops is refused within a quarter
    of what its parent had left (spent plus held never above it), and the parent goes on."""
    key = await gateway.create_key(
        budget_usd="5", budget_usd_per_run="0.002", subagent_budget_share="0.25"
    )
    assert key["subagent_budget_share"] == "0.25"
    client = claude(gateway, key["key"])
    session = str(uuid.uuid4())
    parent, child = f"{key['id']}@{session}", f"{key['id']}@{session}~{AGENT}"
    await ask(client, claude_headers(session))
    _, parent_spent = await asyncio.to_thread(ledger_total, gateway, parent)
    cap = (2000 - parent_spent) * 250_000 // 1_000_000
    refused = False
    for _ in range(100):
        try:
            await ask(client, claude_headers(session, AGENT))
        except anthropic.RateLimitError as err:
            assert "budget" in str(err)
            refused = True
            break
    assert refused, "the sub-agent was never capped"
    child_spend = await settled_spend(gateway, child)
    assert child_spend.budget_micros == cap
    assert child_spend.spent_micros + child_spend.reserved_micros <= cap
    await ask(client, claude_headers(session))  # the parent still has its room
    spend = await tree_settled(gateway, parent)
    assert spend.spent_micros + spend.reserved_micros <= 2000


async def test_bad_share_is_refused(gateway: Gateway) -> None:
    """A share outside (0, 1] is a clear 422, not a key that lends more than its parent has."""
    for share in ("0", "1.5", "-0.1", "abc"):
        answer = await gateway.admin.post(
            "/admin/keys",
            json={"name": "x", "budget_usd": "1", "subagent_budget_share": share},
        )
        assert answer.status_code == 422, (share, answer.text)


async def test_many_sessions_are_bounded_by_max_open_runs(gateway: Gateway) -> None:
    """An agent cannot open unbounded runs by inventing session ids: past the key's open-run
    bound, a new session is refused with too_many_runs, and open ones go on."""
    key = await gateway.create_key(budget_usd="5", max_open_runs=2)
    client = claude(gateway, key["key"])
    first = str(uuid.uuid4())
    await ask(client, claude_headers(first))
    await ask(client, claude_headers(str(uuid.uuid4())))
    try:
        await ask(client, claude_headers(str(uuid.uuid4())))
        raise AssertionError("a third session opened past max_open_runs")
    except anthropic.RateLimitError as err:
        assert "too_many_runs" in str(err) or "open runs" in str(err)
    await ask(client, claude_headers(first))


async def test_openai_sdk_without_agent_headers_is_unchanged(gateway: Gateway) -> None:
    """A client that sends no session stays the key's own run, as before."""
    key = await gateway.create_key(budget_usd="5")
    await oai(gateway, key["key"]).chat.completions.create(model="fake-small", messages=MESSAGES)
    await settled(gateway, key["id"], 1)
