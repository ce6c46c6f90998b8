"""Codex's remote compaction on the Responses API, for targets that cannot compact themselves.

Codex asks for a compaction by ending a Responses request's input with ``{"type":
"compaction_trigger"}`` (remote compaction v2) and expects exactly one output item
``{"type": "compaction", "id", "encrypted_content"}``; later requests carry that item in place of
the history it stands for. OpenAI's Responses API writes the item itself, opaque to anyone else,
so a Responses target gets such a request as it is. Any other target is asked in plain words for
a summary, and runcap carries the model's text in the item (``MARK`` and base64, in
``encrypted_content``). When the item comes back, runcap reads it into a plain user turn, so the
next request translates for any target, a Responses one included.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

JSON = dict[str, Any]

TRIGGER = "compaction_trigger"
ITEM_TYPES = ("compaction", "compaction_summary")
"""Codex reads either name (``compaction_summary`` is the older one)."""
MARK = "runcap-summary-v1:"
"""Starts the ``encrypted_content`` of an item runcap wrote; anything else is the provider's."""

PROMPT = (
    "The conversation has grown too long, so it is being compacted. Write a handoff summary "
    "for the assistant that will continue this work with nothing but your summary: the user's "
    "goal and constraints; what has been done and found so far (files, commands, results, "
    "decisions); what is in progress; and the next steps. Keep every detail that work depends "
    "on (names, paths, values, errors). Be concise and do not call any tool."
)
"""Sent as the last user turn in place of the trigger, to a target that cannot compact."""

HANDOFF = "Summary of the conversation so far, written when its context was compacted:\n\n"


def requested(body: JSON) -> bool:
    """Whether a Responses body asks for a compaction (its input ends with the trigger)."""
    given = body.get("input")
    if not isinstance(given, list) or not given:
        return False
    last = given[-1]
    return isinstance(last, dict) and last.get("type") == TRIGGER


def item(summary: str, item_id: str) -> JSON:
    """The compaction output item that carries ``summary``."""
    packed = base64.b64encode(summary.encode()).decode()
    return {"type": "compaction", "id": item_id, "encrypted_content": MARK + packed}


def summary_of(given: JSON) -> str | None:
    """The summary in a compaction item runcap wrote; ``None`` for the provider's own."""
    content = given.get("encrypted_content")
    if not isinstance(content, str) or not content.startswith(MARK):
        return None
    try:
        return base64.b64decode(content[len(MARK) :], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def is_item(given: Any) -> bool:
    return isinstance(given, dict) and given.get("type") in ITEM_TYPES


def handoff_message(summary: str) -> JSON:
    """A runcap compaction item as the user message it stands for."""
    return {"type": "message", "role": "user", "content": HANDOFF + summary}


def for_responses_target(body: JSON) -> JSON:
    """``body`` for a Responses target: the items runcap wrote become the user turns they stand
    for (the provider could not read them); its own items and the trigger pass as they are."""
    given = body.get("input")
    if not isinstance(given, list) or not any(is_item(i) and summary_of(i) for i in given):
        return body
    rewritten = []
    for each in given:
        summary = summary_of(each) if is_item(each) else None
        rewritten.append(each if summary is None else handoff_message(summary))
    return {**body, "input": rewritten}
