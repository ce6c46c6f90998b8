"""What an alert says: its event id, its sentence, the JSON body (version 1) and Slack's."""

from __future__ import annotations

import dataclasses
import json

from activities.alert_body import describe, encode, event_id_of, json_body, slack_body
from workflows.contracts import Alert

RUN_80 = Alert(
    run_id="run-k1-task-42",
    key_id="key_a",
    kind="threshold",
    threshold_percent=80,
    budget_micros=20_000_000,
    spent_micros=16_000_001,
    at="2026-11-28T12:00:00+00:00",
)
DAY_REFUSED = Alert(
    run_id="run-k1-task-7",
    key_id="key_a",
    kind="refused",
    threshold_percent=0,
    budget_micros=5_000_000,
    spent_micros=4_999_990,
    at="2026-11-28T18:30:00+00:00",
    scope="day",
    period="2026-11-28",
)
DASHBOARD = "https://runcap.example.com/ui/"


def test_derived_event_id_names_the_event_not_the_decision() -> None:
    """The same threshold decided again later (or with more spent) has the same id; another
    percentage, budget, run or scope has another; a given event_id is kept as it is."""
    again = dataclasses.replace(RUN_80, at="2026-11-28T12:05:00+00:00", spent_micros=16_500_000)
    assert event_id_of(RUN_80) == event_id_of(again)
    assert event_id_of(RUN_80).startswith("evt_") and len(event_id_of(RUN_80)) == 36
    for other in (
        dataclasses.replace(RUN_80, threshold_percent=50),
        dataclasses.replace(RUN_80, budget_micros=30_000_000),  # topped up: thresholds re-arm
        dataclasses.replace(RUN_80, run_id="run-k1-task-43"),
        dataclasses.replace(RUN_80, scope="day", period="2026-11-28"),
        dataclasses.replace(RUN_80, kind="refused", threshold_percent=0),
    ):
        assert event_id_of(other) != event_id_of(RUN_80), other
    assert event_id_of(dataclasses.replace(RUN_80, event_id="lead-chosen-1")) == "lead-chosen-1"


def test_period_alerts_are_one_event_across_runs_and_repeatable_kinds_use_their_time() -> None:
    """A key's day alert is the same event whichever run reported it; the next day is another;
    two overruns of one run at different times are two events, one replayed overrun is one."""
    assert event_id_of(DAY_REFUSED) == event_id_of(
        dataclasses.replace(DAY_REFUSED, run_id="run-k1-task-8", at="2026-11-28T19:00:00+00:00")
    )
    assert event_id_of(DAY_REFUSED) != event_id_of(
        dataclasses.replace(DAY_REFUSED, period="2026-11-29")
    )
    overrun = dataclasses.replace(RUN_80, kind="overrun", threshold_percent=0)
    assert event_id_of(overrun) == event_id_of(dataclasses.replace(overrun))
    later = dataclasses.replace(overrun, at="2026-11-28T12:00:01+00:00")
    assert event_id_of(overrun) != event_id_of(later)


def test_sentences_say_what_happened_for_each_kind_and_scope() -> None:
    """Each kind and scope reads as a sentence with the subject and the figures."""
    assert describe(RUN_80) == (
        "run run-k1-task-42 crossed 80% of its $20.000000 budget ($16.000001 spent)"
    )
    assert describe(DAY_REFUSED) == (
        "key key_a: a call was refused, $4.999990 of its $5.000000 budget for the day "
        "2026-11-28 spent"
    )
    month = dataclasses.replace(RUN_80, scope="month", period="2026-11", threshold_percent=50)
    assert describe(month).startswith(
        "key key_a crossed 50% of its $20.000000 budget for the month 2026-11"
    )
    assert "billed more than the call's reservation" in describe(
        dataclasses.replace(RUN_80, kind="overrun")
    )
    assert "sent the same request too often" in describe(dataclasses.replace(RUN_80, kind="loop"))


def test_json_body_version_1_has_every_field() -> None:
    """The documented body: version, event id, kind, scope, period, run, key, threshold, USD
    strings, time, the sentence (the workflow's when it gave one) and dashboard links."""
    body = json_body(
        dataclasses.replace(RUN_80, detail="Run 42 is at 80%: top it up or let it stop."), DASHBOARD
    )
    assert body == {
        "version": 1,
        "event_id": event_id_of(RUN_80),
        "kind": "threshold",
        "scope": "run",
        "period": None,
        "run_id": "run-k1-task-42",
        "key_id": "key_a",
        "threshold_percent": 80,
        "budget_usd": "20.000000",
        "spent_usd": "16.000001",
        "at": "2026-11-28T12:00:00+00:00",
        "message": "Run 42 is at 80%: top it up or let it stop.",
        "links": {
            "run": "https://runcap.example.com/ui/runs/run-k1-task-42",
            "key": "https://runcap.example.com/ui/keys/key_a",
            "alerts": "https://runcap.example.com/ui/alerts",
        },
    }
    period = json_body(DAY_REFUSED)
    assert (period["scope"], period["period"], period["links"]) == ("day", "2026-11-28", {})
    assert period["message"] == describe(DAY_REFUSED)
    assert json.loads(encode(body)) == body and encode(body) == encode(
        json_body(
            dataclasses.replace(RUN_80, detail="Run 42 is at 80%: top it up or let it stop."),
            DASHBOARD,
        )
    )


def test_slack_body_is_text_and_blocks_with_the_figures() -> None:
    """Slack's format: a ``text`` with the sentence and figures, blocks with the fields, and a
    link to the run; a run id is escaped so Slack cannot read it as markup."""
    body = slack_body(RUN_80, DASHBOARD)
    assert set(body) == {"text", "blocks"}
    assert body["text"] == (
        "runcap alert: 80% of budget (run): run run-k1-task-42 crossed 80% of its $20.000000 "
        "budget ($16.000001 spent). Spent $16.000001 of $20.000000."
    )
    section, fields, context = body["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert [f["text"] for f in fields["fields"]] == [
        "*Spent*\n$16.000001",
        "*Budget*\n$20.000000",
        "*Run*\n`run-k1-task-42`",
        "*Key*\n`key_a`",
    ]
    footer = context["elements"][0]["text"]
    assert event_id_of(RUN_80) in footer
    assert "<https://runcap.example.com/ui/runs/run-k1-task-42|open the run>" in footer
    hostile = slack_body(dataclasses.replace(RUN_80, run_id="run-<!channel>&"))
    assert "<!channel>" not in json.dumps(hostile) and "&lt;!channel&gt;&amp;" in hostile["text"]


def test_a_held_run_links_to_the_form_that_approves_it() -> None:
    """A ``held`` alert reads as a pause and links to the run page's approve form, in both
    formats; other kinds have no approve link."""
    held = dataclasses.replace(RUN_80, kind="held", threshold_percent=0)
    assert "is paused" in describe(held) and "approves more budget" in describe(held)
    approve = "https://runcap.example.com/ui/runs/run-k1-task-42#approve"
    assert json_body(held, DASHBOARD)["links"]["approve"] == approve
    assert (
        f"<{approve}|approve more budget>"
        in slack_body(held, DASHBOARD)["blocks"][2]["elements"][0]["text"]
    )
    assert "approve" not in json_body(RUN_80, DASHBOARD)["links"]
