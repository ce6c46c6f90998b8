"""Signing alert webhooks, and checking a signature as a receiver would.

The scheme is Stripe's: ``X-Runcap-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
HMAC-SHA256 of ``"<t>." + body`` under the shared secret. Why the timestamp inside the MAC: a
receiver that also checks it is recent refuses a captured request replayed later. Why ``v1=``:
a later scheme can be added beside it, and a header may carry several ``v1`` values (one per
secret while a secret is being rotated); one match is enough.

Standard library only, so a receiver can copy this file as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Runcap-Signature"
EVENT_ID_HEADER = "X-Runcap-Event-Id"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def signature_of(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The value of ``X-Runcap-Signature`` for ``body``, signed now (or at ``timestamp``)."""
    at = int(time.time()) if timestamp is None else timestamp
    return f"t={at},{SCHEME}={signature_of(secret, at, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs exactly ``body`` under ``secret`` and its timestamp is within
    ``tolerance`` seconds of ``now``. ``body`` must be the raw bytes received, not re-encoded
    JSON: any change to a byte fails the check."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == SCHEME and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature_of(secret, timestamp, body)
    # compare_digest: the time taken must not tell an attacker how many leading bytes matched.
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
