"""``runcap statusline`` as Claude Code runs it, and the key-only run endpoints it asks."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import anthropic
import httpx
from sqlalchemy import func, select

from tests.gateway.conftest import Gateway, L
from tests.gateway.test_cli import SCRIPT, Done, cli_env
from tests.gateway.test_sdks import MESSAGES, settled
from worker.devserver import free_port
from workflows.contracts import MICROS_PER_USD

LINE = re.compile(
    r"runcap \$(?P<spent>[\d.]+) of \$(?P<budget>[\d.]+)"
    r" · \$(?P<rate>[\d.]+)/min · cap in (?P<eta>\d+[smhd]( \d+[smh])?)"
)


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A server on 127.0.0.1 that accepts connections and never answers; its URL."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def status_json(session_id: str) -> str:
    """What Claude Code 2.1 writes on the command's stdin (its ``Status`` hook shape)."""
    return json.dumps(
        {
            "hook_event_name": "Status",
            "session_id": session_id,
            "transcript_path": f"/tmp/{session_id}.jsonl",
            "cwd": "/work/project",
            "model": {"id": "claude-haiku-4-5", "display_name": "Haiku 4.5"},
            "workspace": {"current_dir": "/work/project", "project_dir": "/work/project"},
            "version": "2.1.332",
            "output_style": {"name": "default"},
            "cost": {"total_cost_usd": 0.0123, "total_duration_ms": 45000},
        }
    )


async def statusline(stdin: str, env: dict[str, str], cwd: Path) -> Done:
    """Run the installed ``runcap statusline`` with ``stdin``, as Claude Code does."""
    assert SCRIPT
    process = await asyncio.create_subprocess_exec(
        SCRIPT,
        "statusline",
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=60)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


def claude_env(gateway: Gateway, secret: str, **extra: str) -> dict[str, str]:
    """Claude Code's own settings for runcap: the gateway and the key, nothing of the admin's."""
    env = {
        k: v
        for k, v in cli_env(gateway).items()
        if not k.startswith(("ANTHROPIC_", "RUNCAP_", "OPENAI_"))
    }
    env.update({"ANTHROPIC_BASE_URL": gateway.base_url, "ANTHROPIC_AUTH_TOKEN": secret, **extra})
    return env


def key_ledger(gateway: Gateway, key_id: str) -> list[tuple[str, int]]:
    """(run id, micro-dollars) of each run of the key, from the ledger."""
    stmt = (
        select(L.c.run_id, func.sum(L.c.cost_micros))
        .where(L.c.key_id == key_id)
        .group_by(L.c.run_id)
    )
    with gateway.engine.connect() as conn:
        return [(run, int(micros)) for run, micros in conn.execute(stmt).all()]


async def as_key(gateway: Gateway, path: str, secret: str, **headers: str) -> httpx.Response:
    """``GET path`` with a virtual key (``x-api-key``, as Claude Code sends it) and nothing of
    the admin's."""
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
        return await client.get(path, headers={"x-api-key": secret, **headers})


def usd(micros: int) -> Decimal:
    return Decimal(micros) / MICROS_PER_USD


async def calls(gateway: Gateway, secret: str, n: int, headers: dict[str, str]) -> None:
    """``n`` calls through the anthropic SDK, as Claude Code makes them."""
    async with anthropic.AsyncAnthropic(
        base_url=gateway.base_url, api_key=secret, max_retries=0, default_headers=headers
    ) as client:
        for _ in range(n):
            reply = await client.messages.create(
                model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES
            )
            assert reply.content


async def test_statusline_shows_the_task_runs_spend_budget_and_forecast(
    gateway: Gateway, tmp_path: Path
) -> None:
    """With Claude Code's custom task header, the line is that run's spent and budget exactly
    as the ledger has them, its burn rate and its cap's ETA; the key's other run is apart."""
    key = await gateway.create_key(budget_usd="5", budget_usd_per_run="2")
    session, task = str(uuid.uuid4()), uuid.uuid4().hex[:8]
    tagged = {"x-claude-code-session-id": session, "x-runcap-tags": f"task:{task}"}
    await calls(gateway, key["key"], 3, tagged)
    await calls(gateway, key["key"], 1, {})  # the key's own run: not this line's
    run_id = f"{key['id']}.{task}"
    total = await settled(gateway, run_id, 3)
    await settled(gateway, key["id"], 1)

    env = claude_env(gateway, key["key"], ANTHROPIC_CUSTOM_HEADERS=f"x-runcap-tags: task:{task}")
    done = await statusline(status_json(session), env, tmp_path)
    assert done.code == 0 and done.err == ""
    line = done.out.strip()
    match = LINE.fullmatch(line)
    assert match, line
    assert Decimal(match["spent"]) == usd(total)
    assert Decimal(match["budget"]) == Decimal(2)
    assert Decimal(match["rate"]) > 0
    assert key["key"] not in done.out

    own = await as_key(gateway, f"/v1/runcap/runs/{run_id}", key["key"])
    assert own.status_code == 200, own.text
    body = own.json()
    assert body["run_id"] == run_id and Decimal(body["spent_usd"]) == usd(total)
    forecast = body["forecast"]
    assert Decimal(forecast["window_spent_usd"]) == usd(total)
    assert Decimal(forecast["burn_usd_per_minute"]) == Decimal(match["rate"])
    assert forecast["seconds_to_cap"] > 0


async def test_statusline_follows_claude_codes_session(gateway: Gateway, tmp_path: Path) -> None:
    """Without a task, the line is the run the session's calls landed in (the session id comes
    from stdin, as Claude Code passes it), at the figures the ledger has for it."""
    key = await gateway.create_key(budget_usd_per_day="3")
    session = str(uuid.uuid4())
    await calls(gateway, key["key"], 2, {"x-claude-code-session-id": session})
    [(run_id, _)] = key_ledger(gateway, key["id"])  # rows are written before the answers
    total = await settled(gateway, run_id, 2)
    done = await statusline(status_json(session), claude_env(gateway, key["key"]), tmp_path)
    assert done.code == 0
    match = LINE.fullmatch(done.out.strip())
    assert match, done.out
    assert Decimal(match["spent"]) == usd(total)
    assert Decimal(match["budget"]) == Decimal(3)
    answer = await as_key(
        gateway, "/v1/runcap/run", key["key"], **{"x-claude-code-session-id": session}
    )
    assert answer.status_code == 200 and answer.json()["run_id"] == run_id


async def test_a_key_reads_only_its_own_runs(gateway: Gateway) -> None:
    """Another key's run is a 404 like a missing one, whatever its id looks like; the admin
    routes refuse a virtual key; a key's own run answers."""
    owner = await gateway.create_key(budget_usd="1")
    other = await gateway.create_key(budget_usd="1")
    task = uuid.uuid4().hex[:8]
    await calls(gateway, owner["key"], 1, {"x-runcap-tags": f"task:{task}"})
    run_id = f"{owner['id']}.{task}"
    await settled(gateway, run_id, 1)

    base = "/v1/runcap"
    ok = await as_key(gateway, f"{base}/runs/{run_id}", owner["key"])
    assert ok.status_code == 200
    too_long = f"{other['id']}.{'x' * 300}"
    for stolen in (
        run_id,
        owner["id"],
        f"{other['id']}x.{task}",
        f"{other['id']}.{task}",
        too_long,
    ):
        refused = await as_key(gateway, f"{base}/runs/{stolen}", other["key"])
        assert refused.status_code == 404, (stolen, refused.text)
        assert "spent_usd" not in refused.text
    # The same task tag names the other key's own (empty) run, never the owner's.
    mine = await as_key(gateway, f"{base}/run", other["key"], **{"x-runcap-tags": f"task:{task}"})
    assert mine.status_code == 404 and other["id"] in mine.json()["error"]["message"]
    admin_view = await as_key(gateway, f"/admin/runs/{run_id}", other["key"])
    assert admin_view.status_code == 401
    nobody = await as_key(gateway, f"{base}/run", "rc-nope")
    assert nobody.status_code == 401


async def test_statusline_never_fails(gateway: Gateway, tmp_path: Path) -> None:
    """A refused key, a gateway that is down, no key and junk on stdin each print one short
    line and exit 0 (a status line that errors goes blank), and never the key."""
    secret = "rc-" + uuid.uuid4().hex
    down = f"http://127.0.0.1:{free_port()}"
    cases = [
        (claude_env(gateway, secret), "{}", "runcap: key refused"),
        (claude_env(gateway, secret, ANTHROPIC_BASE_URL=down), "{}", "runcap: gateway unreachable"),
        (claude_env(gateway, ""), status_json("s"), "runcap: no key"),
        (claude_env(gateway, secret), "not json", "runcap: key refused"),
    ]
    for env, stdin, expected in cases:
        done = await statusline(stdin, env, tmp_path)
        assert done.code == 0 and done.err == ""
        assert done.out.startswith(expected) and done.out.count("\n") == 1, done.out
        assert secret not in done.out
    async with silent_server() as silent:
        env = claude_env(gateway, secret, ANTHROPIC_BASE_URL=silent)
        done = await statusline("{}", env, tmp_path)
    assert done.code == 0 and done.out == "runcap: gateway slow\n", done.out
    key = await gateway.create_key(budget_usd="1")
    fresh = await statusline(status_json("new"), claude_env(gateway, key["key"]), tmp_path)
    assert fresh.out == "runcap: no calls yet\n"
