"""What a run's id says: its key, then its task or its agent's session, then its sub-agent.

- a key's run: ``key_1a2b``; a task's: ``key_1a2b.fix-login``; a session's: ``key_1a2b@5f0c…``;
- a sub-agent's: its parent's id, ``~``, its own agent id: ``key_1a2b@5f0c…~a890ffa6``.

The separators cannot be confused: a key id is ``key_`` and hex, a session or an agent id is
cleaned to ``[A-Za-z0-9_-]`` here, and ``~`` is in no tag. Ids an agent sends are its own
input: they are cleaned and bounded, so a run id always fits its column.
"""

from __future__ import annotations

import hashlib
import re

MAX_PART = 64
"""The longest session or agent id kept as sent; longer ones become a hash of themselves."""
MAX_RUN_ID = 200
SUBAGENT = "~"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def clean(value: str) -> str:
    """An id an agent sent, safe in a run id and a tag: unchanged when it is short and plain
    (UUIDs, hex), else a hash of it, so two different ids never become one."""
    if value and len(value) <= MAX_PART and not _UNSAFE.search(value):
        return value
    return "h" + hashlib.sha256(value.encode()).hexdigest()[:24]


def run_id(key_id: str, *, task: str = "", session: str = "") -> str:
    """A run of the key: its task's, else its session's, else the key's own."""
    if task:
        return f"{key_id}.{task}"
    if session:
        return f"{key_id}@{clean(session)}"
    return key_id


def subagent_run_id(parent_run_id: str, agent_id: str) -> str:
    """The run of a sub-agent of ``parent_run_id``; an id past the column's size is hashed."""
    child = f"{parent_run_id}{SUBAGENT}{clean(agent_id)}"
    if len(child) <= MAX_RUN_ID:
        return child
    return f"{parent_run_id[:100]}{SUBAGENT}{clean(child)}"
