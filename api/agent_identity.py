"""Who sent a call, as coding agents say it in their headers: the session, the sub-agent, and
what kind of request it is. Nothing here is configured by the user: the agents send it.

- Claude Code: ``x-claude-code-session-id`` on every call; with
  ``CLAUDE_CODE_GATEWAY_HINT_HEADERS=1`` also ``x-claude-code-request-class`` (``main``,
  ``subagent``, ``compaction``), and for a sub-agent ``x-claude-code-agent-id``,
  ``x-claude-code-agent-type`` and, when nested, ``x-claude-code-parent-agent-id``.
- Codex: ``session-id`` and ``thread-id``, and ``x-codex-turn-metadata``, a JSON object with
  ``session_id``, ``thread_id``, ``agent_name`` and ``request_kind``. A sub-agent is a thread of
  its own in its parent's session.

An agent may send anything here (it is the agent's own input, like a tag): ids are cleaned
(``workflows.run_ids``) and names become tags only when valid ones.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.errors import BadRequest
from api.tags import validate_tag
from workflows.run_ids import clean

COMPACTION_TAG = "request:compaction"
CLAUDE_CODE = "claude-code"
CODEX = "codex"
MAX_METADATA = 16_384
"""Codex's turn metadata is about 1 KB; a larger one is not read."""


@dataclass(frozen=True)
class AgentCall:
    """One call's place in its agent: empty fields when the agent did not say."""

    session: str = ""
    agent_id: str = ""
    """The sub-agent making the call (empty: the main agent)."""
    parent_agent_id: str = ""
    """The sub-agent that started this one (empty: the main agent did)."""
    agent_name: str = ""
    compaction: bool = False

    def tags(self) -> list[str]:
        """``session:…``, ``agent:…`` and ``request:compaction``, where the agent said so."""
        tags = [f"session:{self.session}"] if self.session else []
        if self.agent_name:
            with contextlib.suppress(BadRequest):  # a name we cannot keep: still served
                tags.append(validate_tag(f"agent:{self.agent_name}"))
        if self.compaction:
            tags.append(COMPACTION_TAG)
        return tags


def agent_call(headers: Mapping[str, str]) -> AgentCall:
    """What the call's headers say of its agent (Claude Code's or Codex's), else nothing."""
    if claude := headers.get("x-claude-code-session-id"):
        return _claude_code(claude, headers)
    meta = _codex_metadata(headers.get("x-codex-turn-metadata"))
    session = _text(meta.get("session_id")) or headers.get("session-id", "")
    if not session:
        return AgentCall()
    thread = _text(meta.get("thread_id")) or headers.get("thread-id", "")
    kind = _text(meta.get("request_kind"))
    subagent = kind == "subagent" or bool(thread and thread != session)
    name = _text(meta.get("agent_name")).strip("/")
    return AgentCall(
        session=clean(session),
        agent_id=clean(thread) if subagent and thread else "",
        agent_name=name if subagent and name else CODEX,
        compaction=kind == "compaction",
    )


def _claude_code(session: str, headers: Mapping[str, str]) -> AgentCall:
    kind = headers.get("x-claude-code-request-class", "")
    agent = headers.get("x-claude-code-agent-id", "")
    parent = headers.get("x-claude-code-parent-agent-id", "")
    return AgentCall(
        session=clean(session),
        agent_id=clean(agent) if agent else "",
        parent_agent_id=clean(parent) if agent and parent else "",
        agent_name=headers.get("x-claude-code-agent-type", "") or CLAUDE_CODE,
        compaction=kind == "compaction",
    )


def _codex_metadata(value: str | None) -> dict[str, Any]:
    if not value or len(value) > MAX_METADATA:
        return {}
    try:
        meta = json.loads(value)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
