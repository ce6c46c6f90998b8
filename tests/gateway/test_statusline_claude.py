"""Claude Code itself runs ``runcap statusline``: its terminal shows the run's figures."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import uuid
from decimal import Decimal
from pathlib import Path

from tests.agent_clis import CLAUDE_CODE, ensure
from tests.gateway.conftest import Gateway
from tests.gateway.test_agent_clis import QUIET_CLAUDE
from tests.gateway.test_cli import SCRIPT
from tests.gateway.test_sdks import ledger_total
from tests.gateway.test_statusline import LINE
from tests.polling import eventually
from workflows.contracts import MICROS_PER_USD

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Za-z0-9]")


def trusted_home(home: Path, project: Path, secret: str) -> tuple[Path, Path]:
    """Claude Code's own state as after its first run (onboarded, the project trusted, the key
    approved, so its terminal opens straight on the prompt) and runcap's status line, whose
    stdin and lines are also kept in two files (returned), as Claude Code ran it."""
    stdin, lines = home / "statusline-stdin.jsonl", home / "statusline-lines.txt"
    state = {
        "hasCompletedOnboarding": True,
        "customApiKeyResponses": {"approved": [secret[-20:]], "rejected": []},
        "projects": {str(project): {"hasTrustDialogAccepted": True}},
    }
    (home / ".claude.json").write_text(json.dumps(state))
    command = f"tee -a {stdin} | {SCRIPT} statusline | tee -a {lines}"
    settings = {"statusLine": {"type": "command", "command": command}}
    (home / ".claude").mkdir()
    (home / ".claude" / "settings.json").write_text(json.dumps(settings))
    return stdin, lines


async def test_claude_code_shows_the_runs_spend_in_its_status_line(
    gateway: Gateway, home: Path
) -> None:
    """Claude Code in a terminal, with runcap's statusLine setting: after its answer, the line
    it draws is the task run's spent as the ledger has it, and the run's budget."""
    claude = await asyncio.to_thread(ensure, CLAUDE_CODE)
    task = f"sl-{uuid.uuid4().hex[:8]}"
    project = home.parent / "project"
    project.mkdir()
    key = await gateway.create_key(budget_usd="20", budget_usd_per_run="4")
    stdin, lines = trusted_home(home, project, key["key"])
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
        **QUIET_CLAUDE,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.base_url,
        "ANTHROPIC_API_KEY": key["key"],
        "ANTHROPIC_CUSTOM_HEADERS": f"x-runcap-tags: task:{task}",
    }
    leader, follower = pty.openpty()
    os.set_blocking(leader, False)
    proc = await asyncio.create_subprocess_exec(
        str(claude),
        "say hello",
        cwd=project,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    screen = bytearray()

    def drain() -> str:
        try:
            while chunk := os.read(leader, 65536):
                screen.extend(chunk)
        except (BlockingIOError, OSError):
            pass
        return ANSI.sub("", screen.decode(errors="replace"))

    logged_key = key["key"][:12]  # as the gateway's request log keeps it
    try:
        run_id = f"{key['id']}.{task}"

        async def matching() -> re.Match[str] | None:
            """A line the command printed showing the run's spent as the ledger has it now."""
            drain()  # keep the terminal's buffer flowing
            total = ledger_total(gateway, run_id)[1]
            printed = lines.read_text().splitlines() if lines.exists() else []
            for match in filter(None, map(LINE.fullmatch, printed)):
                if total and Decimal(match["spent"]) * MICROS_PER_USD == total:
                    return match
            return None

        match = await eventually(matching, within=120)
        assert match, (lines.read_text() if lines.exists() else "", drain()[-2000:])
        assert Decimal(match["budget"]) == 4 and Decimal(match["rate"]) > 0
        # And Claude Code drew it (redrawing only the characters that changed: the whole
        # line is in the terminal's stream only if nothing like it was drawn before).
        assert "runcap" in drain()
        sessions = {json.loads(line)["session_id"] for line in stdin.read_text().splitlines()}
        sent = {h.get("x-claude-code-session-id") for h in gateway.heard if h["key"] == logged_key}
        assert len(sessions) == 1 and sessions <= sent, (sessions, sent)
        assert key["key"] not in lines.read_text()
    finally:
        proc.kill()
        await proc.wait()
        os.close(leader)
