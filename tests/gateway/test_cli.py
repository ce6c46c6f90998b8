"""The ``runcap`` command, run as the installed script against the running gateway."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from tests.gateway.conftest import ADMIN_KEY, Gateway
from tests.gateway.test_sdks import MESSAGES, settled
from workflows.contracts import MICROS_PER_USD

SCRIPT = shutil.which("runcap", path=str(Path(sys.executable).parent))


@dataclass
class Done:
    code: int
    out: str
    err: str


def cli_env(gateway: Gateway, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCAP_")}
    # Wide enough that Rich never folds a table cell in these assertions.
    env.update({"RUNCAP_API_URL": gateway.base_url, "COLUMNS": "220", **extra})
    return env


async def runcap(*args: str, env: dict[str, str], cwd: Path) -> Done:
    """Run the installed ``runcap`` script (a subprocess: the gateway shares this event loop)."""
    assert SCRIPT, "the runcap script is not installed in this venv (pip install -e .)"
    process = await asyncio.create_subprocess_exec(
        SCRIPT,
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


@pytest.fixture
def env(gateway: Gateway) -> dict[str, str]:
    return cli_env(gateway, RUNCAP_ADMIN_KEY=ADMIN_KEY)


async def test_keys_create_list_revoke(
    gateway: Gateway, env: dict[str, str], tmp_path: Path
) -> None:
    """keys create prints the secret once; keys list shows the budget; keys revoke revokes."""
    name = f"cli-{uuid.uuid4().hex[:6]}"
    made = await runcap(
        "keys",
        "create",
        name,
        "--budget",
        "2.5",
        "--per",
        "day",
        "--rpm",
        "30",
        env=env,
        cwd=tmp_path,
    )
    assert made.code == 0, made.err
    key_id = made.out.split()[1]
    secret = made.out.strip().splitlines()[-1]
    assert key_id.startswith("key_") and secret.startswith("rc-")
    assert "$2.500000 per day" in made.out
    stored = (await gateway.admin.get(f"/admin/keys/{key_id}")).json()
    assert stored["budget_usd_per_day"] == "2.500000" and stored["rpm"] == 30
    listed = await runcap("keys", "list", env=env, cwd=tmp_path)
    assert listed.code == 0, listed.err
    line = next(row for row in listed.out.splitlines() if key_id in row)
    assert name in line and "$2.500000" in line and "30 rpm" in line and "active" in line
    assert secret not in listed.out
    revoked = await runcap("keys", "revoke", key_id, env=env, cwd=tmp_path)
    assert revoked.code == 0 and f"Revoked {key_id}" in revoked.out
    relisted = await runcap("keys", "list", env=env, cwd=tmp_path)
    assert "revoked" in next(row for row in relisted.out.splitlines() if key_id in row)


async def test_spend_runs_and_tail_follow_real_calls(
    gateway: Gateway, env: dict[str, str], tmp_path: Path
) -> None:
    """Calls through the OpenAI SDK show in spend --by step, runs, runs show, and tail."""
    key = await gateway.create_key(budget_usd="5")
    task = uuid.uuid4().hex[:8]
    run_id = f"{key['id']}.{task}"
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=key["key"], max_retries=0
    ) as client:

        async def call(step: str) -> None:
            await client.chat.completions.create(
                model="fake-small",
                messages=MESSAGES,
                extra_body={"metadata": {"tags": ["agent:cli", f"task:{task}", f"step:{step}"]}},
            )

        for step in ("plan", "edit", "edit"):
            await call(step)
        total = await settled(gateway, run_id, 3)

        spend = await runcap(
            "spend", "--by", "step", "--task", task, "--since", "1h", env=env, cwd=tmp_path
        )
        assert spend.code == 0, spend.err
        edit = next(row for row in spend.out.splitlines() if "step:edit" in row)
        assert " 2 " in edit
        assert f"${Decimal(total) / MICROS_PER_USD:.6f}" in spend.out  # the total row

        runs = await runcap("runs", env=env, cwd=tmp_path)
        assert runs.code == 0, runs.err
        assert "open (live)" in next(row for row in runs.out.splitlines() if run_id in row)

        shown = await runcap("runs", "show", run_id, env=env, cwd=tmp_path)
        assert shown.code == 0, shown.err
        assert f"spent ${Decimal(total) / MICROS_PER_USD:.6f}" in shown.out
        assert "By step" in shown.out and "step:plan" in shown.out and "fake-small" in shown.out

        tail = await asyncio.create_subprocess_exec(
            str(SCRIPT), "tail", "--lines", "1", "--count", "3", "--interval", "0.2",
            env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert tail.stdout is not None
        first = await asyncio.wait_for(tail.stdout.readline(), timeout=30)
        assert first  # the backlog line: tail is polling now
        await call("test")
        await call("test")
        rest, err = await asyncio.wait_for(tail.communicate(), timeout=30)
    assert tail.returncode == 0, err.decode()
    followed = rest.decode().splitlines()
    assert len(followed) == 2
    for line in followed:
        assert run_id in line and "fake-small" in line and "ok" in line
        assert f"task:{task},step:test" in line and "$0.0" in line


async def test_errors_are_one_line_with_nonzero_exit(gateway: Gateway, tmp_path: Path) -> None:
    """A wrong key, an unreachable api, no key and a bad --since each print one line, exit 1."""
    wrong = await runcap(
        "keys", "list", env=cli_env(gateway, RUNCAP_ADMIN_KEY="nope"), cwd=tmp_path
    )
    assert wrong.code == 1 and wrong.out == ""
    assert wrong.err == "runcap: 401 from /admin/keys: invalid admin key\n"
    gone = await runcap(
        "runs",
        env=cli_env(gateway, RUNCAP_ADMIN_KEY="x", RUNCAP_API_URL="http://127.0.0.1:9"),
        cwd=tmp_path,
    )
    assert gone.code == 1 and gone.err.count("\n") == 1
    assert gone.err.startswith("runcap: cannot reach the runcap api at http://127.0.0.1:9")
    keyless = await runcap("keys", "list", env=cli_env(gateway), cwd=tmp_path)
    assert keyless.code == 1 and keyless.err.startswith("runcap: no admin key")
    bad_since = await runcap(
        "spend", "--since", "lately", env=cli_env(gateway, RUNCAP_ADMIN_KEY=ADMIN_KEY), cwd=tmp_path
    )
    assert bad_since.code == 1 and bad_since.err.count("\n") == 1 and "--since" in bad_since.err
    usage = await runcap("spend", "--by", "colour", env=cli_env(gateway), cwd=tmp_path)
    assert usage.code == 2 and usage.err.count("\n") == 1 and "--by" in usage.err
    assert "Traceback" not in wrong.err + gone.err + keyless.err + bad_since.err + usage.err


async def test_admin_key_file_written_by_make_run_is_used(gateway: Gateway, tmp_path: Path) -> None:
    """Without flag or variable, the key comes from .runcap/admin_key in the current folder."""
    (tmp_path / ".runcap").mkdir()
    (tmp_path / ".runcap" / "admin_key").write_text(ADMIN_KEY + "\n")
    listed = await runcap("keys", "list", env=cli_env(gateway), cwd=tmp_path)
    assert listed.code == 0, listed.err
    assert "Keys" in listed.out
