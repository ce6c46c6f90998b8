"""Ledger rows in the database: one row per call, written as an upsert on the call id.

Why an upsert: a row may be written twice (a retried activity, or the caller and then the run
correcting it), and the last write must leave one row and one charge, never two.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from db.journal_models import CallInFlight
from db.models import LedgerEntry, LedgerTag
from workflows.contracts import Attempt, LedgerRow, RecordedCall, Usage

INTENTS = CallInFlight.__table__  # type: ignore[attr-defined]


def parse_time(text: str) -> datetime:
    """An ISO-8601 time as timezone-aware UTC; a naive time is taken to be UTC already."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00")) if text else datetime.now(UTC)
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _tag_prefix(tag: str) -> str:
    prefix, sep, _ = tag.partition(":")
    return prefix if sep else ""


def entry_values(row: LedgerRow) -> dict[str, Any]:
    """The ``ledger`` column values of one contract row."""
    return {
        "call_id": row.call_id,
        "run_id": row.run_id,
        "key_id": row.key_id,
        "tags": list(row.tags),
        "requested_model": row.requested_model,
        "provider": row.provider,
        "model": row.model,
        "status": row.status,
        "attempts": [dataclasses.asdict(a) for a in row.attempts],
        "input_tokens": row.usage.input_tokens,
        "output_tokens": row.usage.output_tokens,
        "cached_input_tokens": row.usage.cached_input_tokens,
        "cache_write_tokens": row.usage.cache_write_tokens,
        "cost_micros": row.cost_micros,
        "reserved_micros": row.reserved_micros,
        "started_at": parse_time(row.started_at),
        "latency_ms": row.latency_ms,
        "error": row.error,
        "caller_id": row.caller_id,
    }


@functools.cache
def _statements(dialect: str) -> tuple[Any, Any, Any, Any]:
    """The four statements of a ledger write, built once per dialect: SQLAlchemy then caches
    their compiled form, and each batch is one executemany of each (compiling a multi-row
    VALUES for every batch cost the api more than the rows themselves)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = LedgerEntry.__table__  # type: ignore[attr-defined]
    tag_table = LedgerTag.__table__  # type: ignore[attr-defined]
    stmt = insert(table)
    columns = [c.name for c in table.columns if c.name not in ("call_id", "settled_at")]
    updates = {name: stmt.excluded[name] for name in columns}
    # A row billed ``unknown`` after its caller went silent is final: the run has billed it so,
    # and a late word from that caller must not make the ledger and the run disagree.
    final = or_(table.c.status != "unknown", stmt.excluded.status == "unknown")
    upsert = stmt.on_conflict_do_update(index_elements=["call_id"], set_=updates, where=final)
    done = delete(INTENTS).where(INTENTS.c.call_id == bindparam("done_id"))
    untag = delete(tag_table).where(tag_table.c.call_id == bindparam("done_id"))
    tag = insert(tag_table).on_conflict_do_nothing()
    return upsert, done, untag, tag


def upsert_rows(conn: Connection, rows: Sequence[LedgerRow]) -> None:
    """Insert or replace the rows and their tags, and delete the rows' intents (the calls are
    recorded: no longer in flight), in the caller's transaction: four executemanys per batch."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise RuntimeError(f"the ledger supports sqlite and postgresql, not {dialect}")
    upsert, done, untag, tag = _statements(dialect)
    # One row per call id (the last word wins), in one lock order for every writer: concurrent
    # batches cannot deadlock on PostgreSQL.
    latest = {row.call_id: row for row in rows}
    ordered = [latest[call_id] for call_id in sorted(latest)]
    conn.execute(upsert, [entry_values(row) for row in ordered])
    ids = [{"done_id": call_id} for call_id in latest]
    conn.execute(done, ids)
    conn.execute(untag, ids)
    tag_rows = [
        {"call_id": row.call_id, "tag": tag, "prefix": _tag_prefix(tag)}
        for row in ordered
        for tag in dict.fromkeys(row.tags)
    ]
    if tag_rows:
        conn.execute(tag, tag_rows)


ROWS_PER_STATEMENT = 200
"""Keeps a statement's parameters far below SQLite's and PostgreSQL's limits."""


def write_rows(engine: Engine, rows: Sequence[LedgerRow]) -> None:
    """Upsert ``rows`` in one transaction (blocking)."""
    if rows:
        with engine.begin() as conn:
            for start in range(0, len(rows), ROWS_PER_STATEMENT):
                upsert_rows(conn, rows[start : start + ROWS_PER_STATEMENT])


RECORDED = ("ok", "failed", "cancelled", "broken")
"""Outcomes only a caller writes; ``unknown`` is the run's own verdict."""


def recorded_calls(engine: Engine, call_ids: Sequence[str]) -> list[RecordedCall]:
    """The calls among ``call_ids`` whose callers recorded how they ended (blocking)."""
    if not call_ids:
        return []
    table = LedgerEntry.__table__  # type: ignore[attr-defined]
    query = select(table).where(table.c.call_id.in_(list(call_ids)), table.c.status.in_(RECORDED))
    return _recorded(engine, query)


def recorded_under(engine: Engine, advance_ids: Sequence[str]) -> list[RecordedCall]:
    """The calls a caller recorded under each of ``advance_ids`` (ids ``<advance>/<n>``)."""
    if not advance_ids:
        return []
    table = LedgerEntry.__table__  # type: ignore[attr-defined]
    under = or_(*(table.c.call_id.startswith(f"{advance}/") for advance in advance_ids))
    return _recorded(engine, select(table).where(under, table.c.status.in_(RECORDED)))


def _recorded(engine: Engine, query: Select[Any]) -> list[RecordedCall]:
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        RecordedCall(
            call_id=row.call_id,
            status=row.status,
            provider=row.provider,
            model=row.model,
            usage=Usage(
                row.input_tokens,
                row.output_tokens,
                row.cached_input_tokens,
                row.cache_write_tokens,
            ),
            attempts=[Attempt(**a) for a in row.attempts or []],
            latency_ms=row.latency_ms,
            error=row.error,
            reserved_micros=row.reserved_micros,
            tags=list(row.tags or []),
            requested_model=row.requested_model,
            started_at=_iso(row.started_at),
            cost_micros=row.cost_micros,
        )
        for row in rows
    ]


def _iso(when: datetime | None) -> str:
    if when is None:
        return ""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
