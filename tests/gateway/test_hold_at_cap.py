"""Hold at the cap, through the real gateway: a key whose runs pause at their cap, the 429 that
says how to approve, the ``held`` alert, and the approval (admin api, CLI, dashboard) after
which the next call passes."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from sqlalchemy import select

from caller import run_handle
from tests.gateway.conftest import ADMIN_KEY, DASHBOARD_URL, Gateway, L, settled_spend
from tests.gateway.test_cli import cli_env, runcap
from tests.polling import eventually
from workflows.agent_run import AgentRun
from workflows.budget import reservation_micros
from workflows.contracts import Price, Target
from workflows.money import micros_to_usd, usd_to_micros
from workflows.run_contracts import RunSpend

MESSAGES: list[Any] = [{"role": "user", "content": "make the failing test pass"}]
SMALL = Target("fake", "fake-small", "openai", Price(500_000, 1_500_000, 500_000, 500_000))
RAW = json.dumps({"model": "fake-small", "messages": MESSAGES, "max_tokens": 20}).encode()
PER_CALL = reservation_micros([SMALL], len(RAW), 20)
"""About what one call below holds (the SDK's body is a few bytes off)."""
TINY = "0.000010"
"""A per-run budget below any call's worth: the run's first call pauses it."""
APPROVAL_WORDS = ("/ui/runs/", "runcap runs extend", "/admin/runs/")


def sdk(gateway: Gateway, key: dict[str, Any]) -> openai.AsyncOpenAI:
    """The openai SDK with its default retries: ``x-should-retry: false`` must stop them."""
    return openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key["key"])


async def call(client: openai.AsyncOpenAI) -> None:
    await client.chat.completions.create(model="fake-small", messages=MESSAGES, max_tokens=20)


async def billed_call(client: openai.AsyncOpenAI) -> tuple[str, int]:
    """One call that passes: its call id and what it was billed (micro-USD, > 0)."""
    raw = await client.chat.completions.with_raw_response.create(
        model="fake-small", messages=MESSAGES, max_tokens=20
    )
    raw.parse()
    cost = usd_to_micros(raw.headers["x-runcap-cost-usd"])
    assert cost > 0
    return raw.headers["x-runcap-call-id"], cost


def sent(gateway: Gateway, key: dict[str, Any]) -> int:
    """Chat calls the api received with this key (the SDK's retries included)."""
    return gateway.seen[("/v1/chat/completions", key["key"][:12])]


def held_message(error: openai.RateLimitError, key: dict[str, Any]) -> str:
    """A held run's refusal: 429 ``run_held``, no retry and no ``Retry-After`` (Claude Code
    gives up on one over 60 s; waiting does not approve), the ways to approve; its message."""
    response = error.response
    assert response.status_code == 429
    assert response.headers["x-should-retry"] == "false"
    assert "retry-after" not in response.headers
    body = response.json()["error"]
    assert body["code"] == "run_held", body
    message: str = body["message"]
    for words in (*APPROVAL_WORDS, key["id"]):
        assert words in message, message
    return message


async def held_refusal(gateway: Gateway, client: openai.AsyncOpenAI, key: dict[str, Any]) -> str:
    """One call refused because the run is held, sent once (the SDK did not retry it), and
    answered at once: no request waits for an approval (Claude Code gives up after 60 s)."""
    before = sent(gateway, key)
    began = time.monotonic()
    with pytest.raises(openai.RateLimitError) as info:
        await call(client)
    assert time.monotonic() - began < 60
    assert sent(gateway, key) == before + 1
    return held_message(info.value, key)


async def within_cap(gateway: Gateway, run_id: str) -> RunSpend:
    """The run's figures, checked: spent + reserved, and spent + all it lent out, within its
    cap."""
    spend: RunSpend = await run_handle(gateway.temporal, run_id).query(AgentRun.spend)
    assert spend.spent_micros + spend.reserved_micros <= spend.budget_micros, spend
    assert spend.spent_micros + spend.lent_micros <= spend.budget_micros, spend
    return spend


def ledger_costs(gateway: Gateway, run_id: str) -> dict[str, int]:
    """The run's billed ledger rows: cost by call id."""
    with gateway.engine.connect() as conn:
        query = select(L.c.call_id, L.c.cost_micros).where(
            L.c.run_id == run_id, L.c.status != "failed"
        )
        return {row.call_id: row.cost_micros for row in conn.execute(query)}


async def run_status(gateway: Gateway, key_id: str, status: str) -> bool:
    """Temporal visibility shows a run of the key with ``RunStatus`` = ``status``."""
    query = f'KeyId = "{key_id}" AND RunStatus = "{status}"'
    return bool([wf async for wf in gateway.temporal.list_workflows(query)])


def held_alerts(gateway: Gateway, run_id: str) -> list[dict[str, Any]]:
    return [a for a in gateway.alerts if a.get("kind") == "held" and a["run_id"] == run_id]


async def test_hold_approve_and_the_next_call_passes(gateway: Gateway) -> None:
    """A hold_at_cap key's run: calls pass until its cap, then 429 run_held (no retry, the ways
    to approve) and the run is paused (run view, RunStatus) with one held alert and its approve
    link; POST /admin/runs/{id}/extend raises the cap, the next call passes and is billed, a
    burst pauses it again at the new cap; spent + reserved never passes either cap, and the
    ledger equals the workflow."""
    await gateway.fake.script("fake-small", completion_tokens="max")
    try:
        per_run = 3 * PER_CALL
        key = await gateway.create_key(budget_usd_per_run=micros_to_usd(per_run), hold_at_cap=True)
        assert key["hold_at_cap"] is True
        run_id = key["id"]  # no task tag, no session: the key's own run
        client = sdk(gateway, key)
        billed: dict[str, int] = {}
        while len(billed) < 10:
            before = sent(gateway, key)
            try:
                call_id, cost = await billed_call(client)
            except openai.RateLimitError as pausing:
                assert sent(gateway, key) == before + 1  # the pausing refusal is not retried
                assert "paused at its cap" in held_message(pausing, key)
                break
            billed[call_id] = cost
            await within_cap(gateway, run_id)
        assert 2 <= len(billed) <= 5, billed  # three calls' worth, each its worst case or less
        await held_refusal(gateway, client, key)  # and so is every call after, at once
        view = (await gateway.admin.get(f"/admin/runs/{run_id}")).json()
        assert view["status"] == "paused", view
        assert await eventually(lambda: run_status(gateway, run_id, "paused"))
        assert await eventually(lambda: held_alerts(gateway, run_id)), "no held alert"
        (alert,) = held_alerts(gateway, run_id)
        assert alert["links"]["approve"] == f"{DASHBOARD_URL}/runs/{run_id}#approve"
        assert "runcap runs extend" in alert["message"]
        paused = await settled_spend(gateway, run_id)
        assert paused.spent_micros == sum(billed.values()) <= per_run
        assert ledger_costs(gateway, run_id) == billed

        path = f"/admin/runs/{run_id}/extend"
        for wrong in ({}, {"by_usd": "1", "budget_usd": "9"}, {"by_usd": "-1"}, {"by_usd": 0}):
            refused = await gateway.admin.post(path, json=wrong)
            assert refused.status_code == 422, (wrong, refused.text)
        lower = await gateway.admin.post(path, json={"budget_usd": micros_to_usd(per_run)})
        assert lower.status_code == 400 and "above" in lower.json()["error"]["message"]
        gone = await gateway.admin.post("/admin/runs/no-such-run/extend", json={"by_usd": "1"})
        assert gone.status_code == 404
        extended = await gateway.admin.post(path, json={"by_usd": micros_to_usd(per_run)})
        assert extended.status_code == 200, extended.text
        raised = 2 * per_run
        assert extended.json()["status"] == "open"
        assert usd_to_micros(extended.json()["budget_usd"]) == raised

        call_id, cost = await billed_call(client)  # the next call passes, and is billed
        billed[call_id] = cost
        assert await eventually(lambda: run_status(gateway, run_id, "open"))
        burst = await asyncio.gather(
            *(billed_call(client) for _ in range(8)), return_exceptions=True
        )
        passed = [r for r in burst if isinstance(r, tuple)]
        refused_now = [r for r in burst if isinstance(r, openai.RateLimitError)]
        assert len(passed) + len(refused_now) == 8, burst
        assert passed and refused_now, burst
        for error in refused_now:
            held_message(error, key)
        billed.update(passed)
        await within_cap(gateway, run_id)
        final = await settled_spend(gateway, run_id)
        assert final.status == "paused" and final.budget_micros == raised
        assert final.calls == len(billed)
        assert final.spent_micros == sum(billed.values()) <= raised
        assert ledger_costs(gateway, run_id) == billed  # each answered call once, as answered
        assert await eventually(lambda: len(held_alerts(gateway, run_id)) == 2)
        events = {a["event_id"] for a in held_alerts(gateway, run_id)}
        assert len(events) == 2  # a pause at the new cap is another event
        await client.close()
    finally:
        await gateway.fake.reset()


async def test_a_key_without_hold_at_cap_refuses_for_good(gateway: Gateway) -> None:
    """The default is unchanged: over its cap a run's call gets budget_exceeded and the run
    stays open (no pause, no held alert)."""
    key = await gateway.create_key(budget_usd_per_run=TINY)
    assert key["hold_at_cap"] is False
    client = sdk(gateway, key)
    with pytest.raises(openai.RateLimitError) as info:
        await call(client)
    await client.close()
    assert info.value.response.json()["error"]["code"] == "budget_exceeded"
    run = (await gateway.admin.get(f"/admin/runs/{key['id']}")).json()
    assert run["status"] == "open" and not held_alerts(gateway, key["id"])


async def test_runcap_runs_extend_approves_a_held_run(gateway: Gateway, tmp_path: Path) -> None:
    """``runcap keys create --hold-at-cap`` makes a key that holds; Claude Code's SDK gets the
    held 429 in Anthropic's envelope and does not retry it; ``runcap runs extend ID --by USD``
    approves the paused run, and the next call passes."""
    env = cli_env(gateway, RUNCAP_ADMIN_KEY=ADMIN_KEY)
    name = f"hold-{uuid.uuid4().hex[:6]}"
    made = await runcap(
        "keys", "create", name, "--budget", "1", "--per-run", TINY, "--hold-at-cap",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert made.code == 0, made.err
    key = {"id": made.out.split()[1], "key": made.out.strip().splitlines()[-1]}
    assert (await gateway.admin.get(f"/admin/keys/{key['id']}")).json()["hold_at_cap"] is True
    client = sdk(gateway, key)
    await held_refusal(gateway, client, key)
    where = ("/v1/messages", key["key"][:12])
    async with anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=key["key"]) as claude:
        with pytest.raises(anthropic.RateLimitError) as info:
            await claude.messages.create(model="fake-small", max_tokens=20, messages=MESSAGES)
    assert gateway.seen[where] == 1  # the SDK's retries stopped by x-should-retry: false
    held = info.value.response
    assert held.headers["x-should-retry"] == "false" and "retry-after" not in held.headers
    assert "runcap runs extend" in held.json()["error"]["message"]
    both = await runcap("runs", "extend", key["id"], env=env, cwd=tmp_path)
    assert both.code == 1 and "--by" in both.err
    done = await runcap("runs", "extend", key["id"], "--by", "0.5", env=env, cwd=tmp_path)
    assert done.code == 0, done.err
    assert f"Run {key['id']}  [open]" in done.out and "cap $0.500010" in done.out
    await call(client)
    await client.close()


async def signed_in(gateway: Gateway, http: httpx.AsyncClient) -> None:
    """Sign in to the dashboard as a browser would: the login form, its CSRF token, the key."""
    login = await http.get("/ui/login")
    signed = await http.post(
        "/ui/login", data={"csrf": csrf_of(login.text), "admin_key": ADMIN_KEY}
    )
    assert signed.status_code == 303, signed.text


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def test_the_dashboard_approves_a_held_run(gateway: Gateway) -> None:
    """The key form's box makes a key that holds; its paused run's page shows the Approve
    form; a post without the session's CSRF token is refused, one with it reopens the run and
    the next call passes."""
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        await signed_in(gateway, http)
        keys = await http.get("/ui/keys")
        name = f"held-{uuid.uuid4().hex[:6]}"
        form = {"csrf": csrf_of(keys.text), "name": name, "budget_usd": "1"}
        made = await http.post(
            "/ui/keys", data={**form, "budget_usd_per_run": TINY, "hold_at_cap": "on"}
        )
        assert made.status_code == 201, made.text
        secret = re.search(r'data-testid="new-secret">([^<]+)<', made.text)
        assert secret
        listed = (await gateway.admin.get("/admin/keys")).json()["keys"]
        (stored,) = [k for k in listed if k["name"] == name]
        assert stored["hold_at_cap"] is True
        key = {"id": stored["id"], "key": secret.group(1)}
        client = sdk(gateway, key)
        await held_refusal(gateway, client, key)

        page = await http.get(f"/ui/runs/{key['id']}")
        assert page.status_code == 200 and "Paused at its cap" in page.text
        assert 'data-testid="approve"' in page.text
        action = f"/ui/runs/{key['id']}/extend"
        refused = await http.post(action, data={"by_usd": "0.5"})
        assert refused.status_code == 403
        blank = await http.post(action, data={"csrf": csrf_of(page.text), "by_usd": ""})
        assert blank.status_code == 400 and 'class="error"' in blank.text
        approved = await http.post(action, data={"csrf": csrf_of(page.text), "by_usd": "0.5"})
        assert approved.status_code == 303
        assert approved.headers["location"] == f"/ui/runs/{key['id']}?approved=0.5"
        after = await http.get(approved.headers["location"])
        assert 'data-testid="approved"' in after.text and "Paused at its cap" not in after.text
        await call(client)
        await client.close()

        edit = await http.get(f"/ui/keys/{key['id']}")
        assert 'name="hold_at_cap" value="on" checked' in edit.text
        unticked = {"csrf": csrf_of(edit.text), "name": name, "budget_usd": "1"}
        saved = await http.post(f"/ui/keys/{key['id']}", data=unticked)
        assert saved.status_code == 303, saved.text
        stored = (await gateway.admin.get(f"/admin/keys/{key['id']}")).json()
        assert stored["hold_at_cap"] is False
