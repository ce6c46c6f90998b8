"""Call tags: where they come from, what a valid one is, and the few prefixes we understand.

Tags are the attribution of every cent (spend per task, per step), so they are validated at the
door: a bad one is a clear 400 rather than a ledger full of unqueryable strings.
Sources, in precedence order: the body's ``metadata.tags`` (the OpenAI SDK's
``extra_body={"metadata": {"tags": [...]}}``, or a comma-separated string where metadata values
must be strings, as on the Responses API; Anthropic bodies may carry it too), the
``x-runcap-tags`` header (comma-separated), then the key's default tags, then what the agent's
own headers say of it (``session:``, ``agent:``; see ``api.agent_identity``). For the understood
prefixes (``agent:``, ``task:``, ``step:``, ``session:``) a call has at most one value: the
request's wins over the key's default, which wins over the agent's headers, and two different
values in one request are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from api.errors import BadRequest
from workflows.budget import step_of as _step_of

MAX_TAGS = 32
MAX_TAG_LENGTH = 128
TAG_HEADER = "x-runcap-tags"
UNDERSTOOD_PREFIXES = ("agent", "task", "step", "session")
_TAG_RE = re.compile(r"[A-Za-z0-9_.:/@+\-]{1,128}")


def validate_tag(tag: object) -> str:
    """Return ``tag`` if it is a valid tag, else raise ``BadRequest`` saying why."""
    if not isinstance(tag, str):
        raise BadRequest(f"tags must be strings, got {type(tag).__name__}", param="metadata.tags")
    if not 1 <= len(tag) <= MAX_TAG_LENGTH:
        raise BadRequest(
            f"tag must be 1 to {MAX_TAG_LENGTH} characters, got {len(tag)}", param="metadata.tags"
        )
    if not _TAG_RE.fullmatch(tag):
        raise BadRequest(
            f"tag {tag!r} has characters outside [A-Za-z0-9_.:/@+-]", param="metadata.tags"
        )
    prefix, sep, value = tag.partition(":")
    if sep and prefix in UNDERSTOOD_PREFIXES and not value:
        raise BadRequest(f"tag {tag!r} has an empty value", param="metadata.tags")
    return tag


def prefix_of(tag: str) -> str:
    """The part before the first ``:`` (empty for a bare tag)."""
    prefix, sep, _ = tag.partition(":")
    return prefix if sep else ""


def body_tags(body: Any) -> list[str]:
    """The raw ``metadata.tags`` of a request body (validated later by ``merge_tags``)."""
    if not isinstance(body, dict):
        return []
    metadata = body.get("metadata")
    if metadata is None:
        return []
    if not isinstance(metadata, dict):
        raise BadRequest("metadata must be an object", param="metadata")
    tags = metadata.get("tags")
    if tags is None:
        return []
    if isinstance(tags, str):
        # Responses (and chat) ``metadata`` values must be strings on the real API, so a
        # comma-separated string is accepted too: ``{"tags": "agent:coder,task:1"}``.
        return header_tags(tags)
    if not isinstance(tags, list):
        raise BadRequest(
            "metadata.tags must be a list of strings or a comma-separated string",
            param="metadata.tags",
        )
    return [validate_tag(tag) for tag in tags]


def header_tags(header: str | None) -> list[str]:
    """The ``x-runcap-tags`` header, comma-separated; blank entries are ignored."""
    if not header:
        return []
    return [validate_tag(part.strip()) for part in header.split(",") if part.strip()]


def _dedupe(tags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(tags))


def merge_tags(
    request_tags: Sequence[str],
    default_tags: Sequence[str] = (),
    header: Sequence[str] = (),
    derived: Sequence[str] = (),
) -> list[str]:
    """Merge body, header, key-default and agent-derived tags, dedupe, and enforce the limits."""
    asked = _dedupe([validate_tag(t) for t in (*request_tags, *header)])
    seen: dict[str, str] = {}
    for tag in asked:
        prefix = prefix_of(tag)
        if prefix in UNDERSTOOD_PREFIXES:
            if prefix in seen:
                raise BadRequest(
                    f"conflicting {prefix}: tags {seen[prefix]!r} and {tag!r}: give at most one",
                    param="metadata.tags",
                )
            seen[prefix] = tag
    defaults = [validate_tag(t) for t in default_tags if prefix_of(t) not in seen]
    merged = _dedupe([*asked, *defaults])
    if len(merged) > MAX_TAGS:
        raise BadRequest(
            f"too many tags: {len(merged)} (at most {MAX_TAGS}, key defaults included)",
            param="metadata.tags",
        )
    # The agent's own headers fill what the request and the key left open, as room allows:
    # the client did not choose them, so they never make its call fail.
    taken = {prefix_of(t) for t in merged}
    for tag in derived:
        prefix = prefix_of(tag)
        free = prefix not in UNDERSTOOD_PREFIXES or prefix not in taken
        if free and len(merged) < MAX_TAGS and tag not in merged:
            merged.append(validate_tag(tag))
            taken.add(prefix)
    return merged


def call_tags(
    body: Any, header: str | None, default_tags: Sequence[str] = (), derived: Sequence[str] = ()
) -> list[str]:
    """All tags of one call: body ``metadata.tags``, the header, the key's defaults, then what
    the agent's headers say."""
    return merge_tags(body_tags(body), default_tags, header_tags(header), derived)


def _value_of(tags: Iterable[str], prefix: str) -> str:
    start = prefix + ":"
    for tag in tags:
        if tag.startswith(start):
            return tag[len(start) :]
    return ""


def task_of(tags: Iterable[str]) -> str:
    """The ``task:`` value (empty when none): it names the run together with the key."""
    return _value_of(tags, "task")


def session_of(tags: Iterable[str]) -> str:
    """The ``session:`` value (empty when none): an agent's session is a run of its own."""
    return _value_of(tags, "session")


def agent_of(tags: Iterable[str]) -> str:
    """The ``agent:`` value (empty when none)."""
    return _value_of(tags, "agent")


def step_of(tags: Iterable[str]) -> str:
    """The whole ``step:`` tag, as the run's per-step breakdown keys it."""
    return _step_of(tags)
