"""The README's alert section stays true: its snippet verifies runcap's signatures, its example
body and field table list exactly the fields sent, and its retry figures are the policy's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from activities.alert_body import json_body
from activities.alert_signature import signature_header
from workflows.chores import BOOKKEEPING_RETRY
from workflows.contracts import Alert

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "whsec-readme"
BODY = b'{"version":1,"event_id":"evt_1"}'
ALERT = Alert("key_a.1", "key_a", "threshold", 80, 20_000_000, 16_000_001, "2026-11-28T12:00:00Z")


def section() -> str:
    text = README.read_text()
    start = text.index("### Alert webhooks")
    return text[start : text.index("\n### ", start + 1)]


def block(language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", section(), re.DOTALL)
    assert found is not None, f"the README's alert section has no {language} block"
    return found.group(1)


def test_the_readme_snippet_verifies_what_runcap_signs() -> None:
    """The README's verification code accepts runcap's signature, refuses a tampered body."""
    namespace: dict[str, Any] = {}
    exec(compile(block("python"), "README.md", "exec"), namespace)  # our own README
    verify = namespace["verify"]
    header = signature_header(SECRET, BODY)
    assert verify(SECRET, header, BODY) is True
    assert verify(SECRET, header, BODY + b" ") is False
    assert verify("whsec-wrong", header, BODY) is False
    assert verify(SECRET, signature_header(SECRET, BODY, timestamp=1_000_000_000), BODY) is False


def test_the_example_body_and_the_field_table_match_what_is_sent() -> None:
    """The example has exactly the body's fields, and the table names each of them."""
    sent = json_body(ALERT, "http://127.0.0.1:8000/ui")
    example = json.loads(block("json"))
    assert list(example) == list(sent)
    assert set(example["links"]) == set(sent["links"])
    first_cells = re.findall(r"^\| (`[^|]*) \|", section(), re.MULTILINE)
    documented = {name for cell in first_cells for name in re.findall(r"`([a-z_]+)`", cell)}
    assert set(sent) <= documented


def test_the_retry_figures_are_the_workflows_policy() -> None:
    """The README's "1 s doubling to 30 s, 10 attempts" is ``BOOKKEEPING_RETRY``."""
    policy = BOOKKEEPING_RETRY
    assert policy.initial_interval.total_seconds() == 1 and policy.backoff_coefficient == 2
    assert policy.maximum_interval is not None and policy.maximum_interval.total_seconds() == 30
    assert policy.maximum_attempts == 10
    assert "1 s doubling to\n30 s, 10 attempts" in section()
