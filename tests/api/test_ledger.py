"""The ledger activity: an idempotent upsert on call id, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlmodel import Session
from temporalio.testing import ActivityEnvironment

from activities.ledger import LedgerActivities
from db.ledger import parse_time
from db.models import LedgerEntry, LedgerTag
from tests.api.helpers import row
from workflows.contracts import LedgerBatch

L = LedgerEntry.__table__  # type: ignore[attr-defined]
T = LedgerTag.__table__  # type: ignore[attr-defined]


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(L)).scalar_one()
        total = conn.execute(select(func.coalesce(func.sum(L.c.cost_micros), 0))).scalar_one()
        tags = conn.execute(select(func.count()).select_from(T)).scalar_one()
    return int(rows), int(total), int(tags)


async def test_same_call_written_twice_is_one_row(engine: Engine) -> None:
    """A retried ledger write (same call_id) leaves one row and the same total."""
    acts = LedgerActivities(engine)
    batch = LedgerBatch(rows=[row("c1", cost=1234, tags=["task:1", "step:edit"]), row("c2")])
    env = ActivityEnvironment()
    await env.run(acts.write_ledger, batch)
    await env.run(acts.write_ledger, batch)
    assert counts(engine) == (2, 1235, 2)


async def test_rewrite_replaces_values_and_tags(engine: Engine) -> None:
    """A second write of a call id replaces its figures and tags rather than adding to them."""
    acts = LedgerActivities(engine)
    env = ActivityEnvironment()
    await env.run(acts.write_ledger, LedgerBatch([row("c1", cost=10, tags=["step:a", "x"])]))
    await env.run(acts.write_ledger, LedgerBatch([row("c1", cost=7, tags=["step:b"])]))
    assert counts(engine) == (1, 7, 1)
    with Session(engine) as session:
        entry = session.get(LedgerEntry, "c1")
        assert entry is not None
        assert entry.tags == ["step:b"] and entry.attempts[0]["model"] == "fake-small"
        assert entry.reserved_micros == 14 and entry.input_tokens == 10


async def test_empty_batch_and_big_money(engine: Engine) -> None:
    """An empty batch is a no-op; costs beyond 32 bits are kept exactly (BIGINT)."""
    acts = LedgerActivities(engine)
    await ActivityEnvironment().run(acts.write_ledger, LedgerBatch([]))
    huge = 5_000_000_000_123
    acts.write_sync(LedgerBatch([dataclasses.replace(row("c1"), cost_micros=huge)]))
    assert counts(engine)[1] == huge


def test_times_are_stored_as_utc() -> None:
    """Offsets and 'Z' convert to UTC; naive times are taken as UTC."""
    assert parse_time("2025-01-01T23:30:00-02:00") == datetime(2025, 1, 2, 1, 30, tzinfo=UTC)
    assert parse_time("2025-01-01T00:00:00Z") == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_time("2025-01-01T05:00:00").tzinfo is UTC
