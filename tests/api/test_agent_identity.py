"""What Claude Code's and Codex's headers say of a call's session and sub-agent, and the run ids
and tags made of it. The header values are the ones the real CLIs sent through runcap
(Claude Code 2.1.332, Codex 0.171.0)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from api.agent_identity import AgentCall, agent_call
from api.tags import MAX_TAGS, call_tags, validate_tag
from workflows.run_ids import MAX_RUN_ID, clean, run_id, subagent_run_id

SESSION = "0f6f3c1e-5d8c-4f43-9a55-2b1f5b0e2c77"
CLAUDE_MAIN = {
    "x-claude-code-session-id": SESSION,
    "x-claude-code-request-class": "main",
    "x-claude-code-prompt-id": "p-1",
    "x-app": "cli",
}
CLAUDE_SUB = {
    "x-claude-code-session-id": SESSION,
    "x-claude-code-request-class": "subagent",
    "x-claude-code-agent-id": "a890ffa6c6c5db74e",
    "x-claude-code-agent-type": "general-purpose",
}


def codex(**meta: str) -> dict[str, str]:
    thread = meta.get("thread_id", SESSION)
    body = {"session_id": SESSION, "thread_id": thread, "turn_id": "t-1", **meta}
    return {"session-id": SESSION, "thread-id": thread, "x-codex-turn-metadata": json.dumps(body)}


def test_claude_code_main_agent_is_its_session() -> None:
    """Claude Code's main agent: its session, named claude-code, not a sub-agent."""
    call = agent_call(CLAUDE_MAIN)
    assert call == AgentCall(session=SESSION, agent_name="claude-code")
    assert call.tags() == [f"session:{SESSION}", "agent:claude-code"]


def test_claude_code_subagent_and_nested_one() -> None:
    """A Claude Code sub-agent is named by its type; a nested one knows its parent agent."""
    call = agent_call(CLAUDE_SUB)
    assert (call.session, call.agent_id, call.agent_name) == (
        SESSION,
        "a890ffa6c6c5db74e",
        "general-purpose",
    )
    nested = agent_call({**CLAUDE_SUB, "x-claude-code-parent-agent-id": "a1"})
    assert nested.parent_agent_id == "a1"
    main_with_parent = agent_call({**CLAUDE_MAIN, "x-claude-code-parent-agent-id": "a1"})
    assert main_with_parent.parent_agent_id == ""  # only a sub-agent has a parent agent


def test_claude_code_compaction_is_tagged() -> None:
    """Claude Code's compaction request class becomes request:compaction."""
    call = agent_call({**CLAUDE_MAIN, "x-claude-code-request-class": "compaction"})
    assert "request:compaction" in call.tags()


def test_codex_main_thread_subagent_and_compaction() -> None:
    """Codex: the root thread is the session; another thread or request_kind subagent is a
    sub-agent named by agent_name; a compaction turn is tagged."""
    main = agent_call(codex(agent_name="/root", request_kind="turn"))
    assert main == AgentCall(session=SESSION, agent_name="codex")
    sub = agent_call(codex(thread_id="th-2", agent_name="/root/explorer", request_kind="subagent"))
    assert (sub.agent_id, sub.agent_name) == ("th-2", "root/explorer")
    assert "agent:root/explorer" in sub.tags()
    compaction = agent_call(codex(request_kind="compaction"))
    assert compaction.compaction and compaction.agent_id == ""


def test_codex_without_metadata_uses_its_session_header() -> None:
    """Older Codex sends only session-id: still its session's run."""
    assert agent_call({"session-id": SESSION}).session == SESSION


def test_no_agent_headers_and_bad_metadata_say_nothing() -> None:
    """Other clients, and metadata that is not a JSON object, give no identity and no error."""
    assert agent_call({"user-agent": "OpenAI/Python"}) == AgentCall()
    for bad in ("{", "[1]", "x" * 20_000):
        assert agent_call({"x-codex-turn-metadata": bad}) == AgentCall()


def test_run_ids_by_task_session_key_and_subagent() -> None:
    """Task beats session beats key; a sub-agent's run is its parent's id, ~, its agent id."""
    assert run_id("key_ab", task="t1", session=SESSION) == "key_ab.t1"
    assert run_id("key_ab", session=SESSION) == f"key_ab@{SESSION}"
    assert run_id("key_ab") == "key_ab"
    assert subagent_run_id(f"key_ab@{SESSION}", "a89") == f"key_ab@{SESSION}~a89"


@given(st.text(max_size=300), st.text(max_size=300))
def test_any_ids_an_agent_sends_make_a_bounded_safe_run_id(session: str, agent: str) -> None:
    """Whatever an agent sends as ids, the run id is bounded and plain, and distinct ids stay
    distinct (a hash keeps them apart)."""
    parent = run_id("key_0123456789abcdef", session=session)
    child = subagent_run_id(parent, agent or "a")
    assert len(child) <= MAX_RUN_ID
    assert all(c.isalnum() or c in "_-@.~" for c in child)
    if session and session != clean(session):
        assert clean(session) != clean(session + "x")


def test_derived_tags_never_override_or_overflow() -> None:
    """Tags the call asks for win over derived ones, and derived ones never push a call over
    the tag limit (they are dropped, the call is served)."""
    tags = call_tags({"metadata": {"tags": ["agent:mine"]}}, None, (), ["agent:codex", "session:s"])
    assert tags == ["agent:mine", "session:s"]
    many = [f"x:{i}" for i in range(MAX_TAGS)]
    assert call_tags({"metadata": {"tags": many}}, None, (), ["session:s"]) == many
    assert validate_tag("session:" + clean("a b c")) == "session:" + clean("a b c")
