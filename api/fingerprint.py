"""A request's fingerprint, for the loop guard: the same conversation and tools, the same hash.

Normalised as canonical JSON of what the model is asked (messages, input, system or
instructions, tools), so key order, streaming, ``max_tokens`` or runcap's own tags do not make
two identical requests look different.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

ASKED = ("messages", "input", "system", "instructions", "tools", "tool_choice")


def fingerprint(body: dict[str, Any]) -> str:
    asked = {name: body[name] for name in ASKED if name in body}
    canonical = json.dumps(asked, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
