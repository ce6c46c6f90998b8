"""What an alert says: its event id, its sentence, and the two webhook bodies (runcap's JSON,
version 1, and Slack's incoming-webhook format). Pure functions, no I/O.

The JSON body is a public contract (documented in the README): add fields, never rename or
remove one without raising ``version``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol
from urllib.parse import quote

from workflows.contracts import Alert
from workflows.money import micros_to_usd

BODY_VERSION = 1
REPEATABLE_KINDS = ("overrun", "loop")
"""Kinds that may truly happen more than once for one run and budget, so their time is part
of what makes the event."""


class AlertFacts(Protocol):
    """What a sentence needs: both the contract's ``Alert`` and a stored ``AlertRecord``."""

    @property
    def run_id(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def period(self) -> str: ...
    @property
    def threshold_percent(self) -> int: ...
    @property
    def budget_micros(self) -> int: ...
    @property
    def spent_micros(self) -> int: ...


def event_id_of(alert: Alert) -> str:
    """The alert's own ``event_id``, else one derived from what the event is.

    The derived id names the event, not the decision: a threshold is one event per subject
    (the run, or the key's period), budget and percentage; a refusal one per subject and
    budget (a top-up re-arms both, and changes the budget). So a workflow that decides the same
    alert twice (replayed after a restart, a run reopened with its spend) makes the same id.
    Overruns and loops can recur, so their time (``workflow.now()``, stable on replay) is in.
    """
    if alert.event_id:
        return alert.event_id
    subject = alert.run_id if alert.scope == "run" else alert.period
    parts = [
        alert.kind,
        alert.scope,
        alert.key_id,
        subject,
        str(alert.threshold_percent),
        str(alert.budget_micros),
    ]
    if alert.kind in REPEATABLE_KINDS:
        parts.append(alert.at)
    return "evt_" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def _budget_words(alert: AlertFacts) -> str:
    budget = micros_to_usd(alert.budget_micros)
    if alert.scope == "run":
        return f"its ${budget} budget"
    return f"its ${budget} budget for the {alert.scope} {alert.period}".rstrip()


def describe(alert: AlertFacts) -> str:
    """The alert in one sentence, for when the workflow gave none (and for older records)."""
    spent = micros_to_usd(alert.spent_micros)
    subject = f"run {alert.run_id}" if alert.scope == "run" else f"key {alert.key_id}"
    budget = _budget_words(alert)
    if alert.kind == "threshold":
        return f"{subject} crossed {alert.threshold_percent}% of {budget} (${spent} spent)"
    if alert.kind == "refused":
        return f"{subject}: a call was refused, ${spent} of {budget} spent"
    if alert.kind == "overrun":
        return (
            f"{subject}: a provider billed more than the call's reservation "
            f"(${spent} of {budget} spent)"
        )
    if alert.kind == "held":
        return (
            f"{subject} reached {budget} (${spent} spent) and is paused: its calls are refused "
            "until a person approves more budget"
        )
    if alert.kind == "loop":
        return (
            f"{subject} sent the same request too often and its calls are refused "
            f"(${spent} of {budget} spent)"
        )
    return f"{subject}: {alert.kind} alert (${spent} of {budget} spent)"


def sentence_of(alert: Alert) -> str:
    """The workflow's own sentence when it wrote one, else ours."""
    return alert.detail or describe(alert)


def links_of(alert: Alert, dashboard_url: str | None) -> dict[str, str]:
    """Dashboard pages about the alert: its run, its key, the alerts list, and for a run held
    at its cap, the form that approves more budget (none without a URL)."""
    if not dashboard_url:
        return {}
    base = dashboard_url.rstrip("/")
    links: dict[str, str] = {}
    if alert.run_id and alert.scope == "run":
        links["run"] = f"{base}/runs/{quote(alert.run_id, safe='')}"
        if alert.kind == "held":
            links["approve"] = links["run"] + "#approve"
    if alert.key_id:
        links["key"] = f"{base}/keys/{quote(alert.key_id, safe='')}"
    links["alerts"] = f"{base}/alerts"
    return links


def json_body(alert: Alert, dashboard_url: str | None = None) -> dict[str, Any]:
    """runcap's webhook body, version 1: money as exact USD strings, empty values as null."""
    return {
        "version": BODY_VERSION,
        "event_id": event_id_of(alert),
        "kind": alert.kind,
        "scope": alert.scope,
        "period": alert.period or None,
        "run_id": alert.run_id or None,
        "key_id": alert.key_id or None,
        "threshold_percent": alert.threshold_percent,
        "budget_usd": micros_to_usd(alert.budget_micros),
        "spent_usd": micros_to_usd(alert.spent_micros),
        "at": alert.at,
        "message": sentence_of(alert),
        "links": links_of(alert, dashboard_url),
    }


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions; a run id from a task tag must not become one.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _title(alert: Alert) -> str:
    what = f"{alert.threshold_percent}% of budget" if alert.kind == "threshold" else alert.kind
    scope = "run" if alert.scope == "run" else f"{alert.scope} {alert.period}".rstrip()
    return f"runcap alert: {what} ({scope})"


def slack_body(alert: Alert, dashboard_url: str | None = None) -> dict[str, Any]:
    """Slack's incoming-webhook format: ``text`` (the notification, and the fallback) and
    ``blocks`` with the sentence, the figures and a link to the run when one is known."""
    spent, budget = micros_to_usd(alert.spent_micros), micros_to_usd(alert.budget_micros)
    sentence = _slack_escape(sentence_of(alert))
    text = f"{_title(alert)}: {sentence}. Spent ${spent} of ${budget}."
    fields = [
        ("Spent", f"${spent}"),
        ("Budget", f"${budget}"),
        ("Run", f"`{_slack_escape(alert.run_id)}`" if alert.run_id else "-"),
        ("Key", f"`{_slack_escape(alert.key_id)}`" if alert.key_id else "-"),
    ]
    context = [f"event `{event_id_of(alert)}`", _slack_escape(alert.at)]
    links = links_of(alert, dashboard_url)
    if "approve" in links:
        context.append(f"<{links['approve']}|approve more budget>")
    elif "run" in links:
        context.append(f"<{links['run']}|open the run>")
    elif "key" in links:
        context.append(f"<{links['key']}|open the key>")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_title(alert)}*\n{sentence}"}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in fields],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
    ]
    return {"text": text, "blocks": blocks}


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed (compact UTF-8 JSON; the same alert, the same bytes)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
