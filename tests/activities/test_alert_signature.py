"""Alert signatures: what a receiver accepts and what it refuses, and the README's snippet."""

from __future__ import annotations

import re

from activities.alert_signature import signature_header, signature_of, verify_signature

SECRET = "whsec-correct-horse"
BODY = b'{"version":1,"event_id":"evt_1","kind":"threshold","spent_usd":"16.000001"}'
NOW = 1_764_300_000


def test_a_signed_body_verifies_with_its_secret() -> None:
    """The header the sender makes verifies with the same secret and the same bytes."""
    header = signature_header(SECRET, BODY, timestamp=NOW)
    assert header == f"t={NOW},v1={signature_of(SECRET, NOW, BODY)}"
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify_signature(SECRET, header, BODY, tolerance=300, now=NOW + 10)


def test_a_wrong_secret_or_a_changed_byte_fails() -> None:
    """Another secret, a tampered body, or a forged timestamp does not verify."""
    header = signature_header(SECRET, BODY, timestamp=NOW)
    assert not verify_signature("whsec-wrong", header, BODY, now=NOW)
    assert not verify_signature(SECRET, header, BODY.replace(b"16.000001", b"1.000001"), now=NOW)
    forged = header.replace(f"t={NOW}", f"t={NOW + 60}")
    assert not verify_signature(SECRET, forged, BODY, now=NOW + 60)


def test_an_old_signature_is_refused_as_a_replay() -> None:
    """A request signed longer ago than the tolerance (or too far ahead) is refused."""
    header = signature_header(SECRET, BODY, timestamp=NOW)
    assert verify_signature(SECRET, header, BODY, tolerance=300, now=NOW + 300)
    assert not verify_signature(SECRET, header, BODY, tolerance=300, now=NOW + 301)
    assert not verify_signature(SECRET, header, BODY, tolerance=300, now=NOW - 301)


def test_malformed_headers_fail_and_any_matching_v1_passes() -> None:
    """No timestamp, no signature or garbage fails; one good v1 among several (rotation) passes."""
    good = signature_of(SECRET, NOW, BODY)
    for header in (
        "",
        "garbage",
        f"v1={good}",
        f"t={NOW}",
        f"t=abc,v1={good}",
        f"t={NOW},v0={good}",
    ):
        assert not verify_signature(SECRET, header, BODY, now=NOW), header
    rotated = f"t={NOW},v1={signature_of('whsec-old', NOW, BODY)},v1={good}"
    assert verify_signature(SECRET, rotated, BODY, now=NOW)
