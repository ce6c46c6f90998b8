"""The journal's statements (tables in ``db.journal_models``): intents, runs opened, nudges, and
what a silent caller left behind. Every function blocks; callers run them in a thread.

Why here and not in Temporal: an intent must be durable before its call goes out, on every
call, and a database insert is a fraction of a millisecond where a workflow update is a round
trip and history events. The keepers (workflows) stay the keepers of every cap; the journal only
tells them, after a crash, which calls may have gone out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError

from db.journal_models import CallInFlight, Nudge, RunRecord
from db.ledger import upsert_rows
from db.models import LedgerEntry
from workflows.contracts import LedgerRow, Usage
from workflows.lending_contracts import Recorded

I = CallInFlight.__table__  # type: ignore[attr-defined]  # noqa: E741
R = RunRecord.__table__  # type: ignore[attr-defined]
N = Nudge.__table__  # type: ignore[attr-defined]
L = LedgerEntry.__table__  # type: ignore[attr-defined]
UNKNOWN_OUTCOME = "its api instance stopped before recording it; billed at its reservation"
_BILLED = func.count().filter(L.c.status != "failed")
"""Calls that did not fail (a failed call costs nothing and reports no call)."""
_PG_LOCK_SPACE = 0x7275_6E73  # "runs": serialises the opening of one key's runs on PostgreSQL
_PG_LOCK_KEY = text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))")
MAX_TREE_DEPTH = 4
"""Sub-agents of sub-agents, this many levels down: deeper ones are charged to their ancestor
at this depth (``api.gateway``), so a run's tree is read in at most this many queries."""
MAX_CHILDREN = 100
"""Sub-agents' runs a run's view lists (all of them count in its figures)."""


@dataclass
class Intent:
    """A call about to go out: written before it does."""

    call_id: str
    run_id: str
    key_id: str
    caller_id: str
    reserved_micros: int
    started_at: datetime
    tags: list[str]
    requested_model: str = ""
    provider: str = ""
    model: str = ""


@dataclass
class Opening:
    """A run this caller opens with a line of ``micros`` (at most ``max_open`` open per key)."""

    run_id: str
    key_id: str
    caller_id: str
    micros: int
    opened_at: datetime
    max_open: int
    start_input: dict[str, Any] | None = None
    parent_run_id: str | None = None


OpenResult = Literal["opened", "open", "closed", "too_many"]
"""``opened``: this caller opened the run; ``open``: someone else did, it is open; ``closed``:
the run ended (it may be reopened through its workflow); ``too_many``: the key has its
``max_open`` runs open already."""


def write_intents(engine: Engine, intents: Sequence[Intent]) -> None:
    """Record calls about to go out, in one transaction."""
    if intents:
        with engine.begin() as conn:
            conn.execute(I.insert(), [vars(i) for i in intents])


def open_run(engine: Engine, opening: Opening) -> tuple[OpenResult, dict[str, Any] | None]:
    """Insert the run's row if the key may open another run. Returns what happened and, for a
    run already open, the input its opener started it with (its opening line included), so
    whoever starts its workflow starts it the same way."""
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(_PG_LOCK_KEY, {"space": _PG_LOCK_SPACE, "key": opening.key_id})
            existing = conn.execute(
                select(R.c.closed_at, R.c.start_input).where(R.c.run_id == opening.run_id)
            ).first()
            if existing is not None:
                return _found(existing)
            if _open_count(conn, opening.key_id) >= opening.max_open:
                return "too_many", None
            conn.execute(
                R.insert().values(
                    run_id=opening.run_id,
                    key_id=opening.key_id,
                    opened_by=opening.caller_id,
                    opening_micros=opening.micros,
                    opened_at=opening.opened_at,
                    started=False,
                    closed_at=None,
                    start_input=opening.start_input,
                    parent_run_id=opening.parent_run_id,
                )
            )
            return "opened", opening.start_input
    except IntegrityError:
        with engine.connect() as conn:
            row = conn.execute(
                select(R.c.closed_at, R.c.start_input).where(R.c.run_id == opening.run_id)
            ).one()
        return _found(row)


def _found(row: Any) -> tuple[OpenResult, dict[str, Any] | None]:
    if row.closed_at is None:
        return "open", row.start_input
    return "closed", None


def _open_count(conn: Connection, key_id: str) -> int:
    query = select(func.count()).where(R.c.key_id == key_id, R.c.closed_at.is_(None))
    return int(conn.execute(query).scalar() or 0)


def reopen_run(engine: Engine, run_id: str, key_id: str, max_open: int) -> bool:
    """Mark an ended run open again (its workflow is being reopened); False past ``max_open``."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(_PG_LOCK_KEY, {"space": _PG_LOCK_SPACE, "key": key_id})
        if _open_count(conn, key_id) >= max_open:
            return False
        conn.execute(update(R).where(R.c.run_id == run_id).values(closed_at=None, started=True))
        return True


def run_row(engine: Engine, run_id: str) -> RunRecord | None:
    with engine.connect() as conn:
        row = conn.execute(select(R).where(R.c.run_id == run_id)).first()
    return None if row is None else RunRecord.model_validate(row._mapping)


def mark_started(engine: Engine, run_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(R).where(R.c.run_id == run_id).values(started=True))


def mark_closed(engine: Engine, run_id: str, at: datetime) -> None:
    """The run's workflow ended: it no longer counts against its key's open runs."""
    with engine.begin() as conn:
        conn.execute(update(R).where(R.c.run_id == run_id).values(closed_at=at, started=True))


def unstarted_runs(engine: Engine, opened_before: datetime, limit: int = 100) -> list[RunRecord]:
    """Open runs whose opener never confirmed their workflow's start (it may have died)."""
    query = (
        select(R)
        .where(R.c.started.is_(False), R.c.closed_at.is_(None), R.c.opened_at < opened_before)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [RunRecord.model_validate(row._mapping) for row in conn.execute(query)]


def parents_of(engine: Engine, run_ids: Sequence[str]) -> dict[str, str]:
    """The parent of each sub-agent's run among ``run_ids`` (others are absent)."""
    query = select(R.c.run_id, R.c.parent_run_id).where(
        R.c.run_id.in_(list(run_ids)), R.c.parent_run_id.is_not(None)
    )
    with engine.connect() as conn:
        return {run_id: parent for run_id, parent in conn.execute(query)}


def sub_runs(conn: Connection, run_id: str, limit: int) -> list[str]:
    """A run's sub-agents' runs, oldest first."""
    query = (
        select(R.c.run_id)
        .where(R.c.parent_run_id == run_id)
        .order_by(R.c.opened_at, R.c.run_id)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def run_tree(conn: Connection, run_id: str) -> list[str]:
    """The run and its sub-agents' runs, theirs too, down to ``MAX_TREE_DEPTH`` levels: the
    runs whose calls each need room at this one, and whose spend it shows."""
    tree, level = [run_id], [run_id]
    for _ in range(MAX_TREE_DEPTH):
        level = list(conn.execute(select(R.c.run_id).where(R.c.parent_run_id.in_(level))).scalars())
        if not level:
            break
        tree += level
    return tree


def tree_spend(engine: Engine, run_id: str) -> tuple[int, int]:
    """What a run and its sub-agents spent (the ledger) and hold now (their intents)."""
    with engine.connect() as conn:
        tree = run_tree(conn, run_id)
        spent = conn.execute(
            select(func.coalesce(func.sum(L.c.cost_micros), 0)).where(L.c.run_id.in_(tree))
        ).scalar()
        held = conn.execute(
            select(func.coalesce(func.sum(I.c.reserved_micros), 0)).where(I.c.run_id.in_(tree))
        ).scalar()
    return int(spent or 0), int(held or 0)


def recorded_for_run(engine: Engine, caller_id: str, run_id: str, since: datetime) -> Recorded:
    """What a silent caller left for one run since its line opened: its ledger rows, and its
    intents, which become ``unknown`` ledger rows at their reservations (the provider may have
    done the work) in the same transaction, so the ledger equals the run. A sub-agent's calls
    held room on their parent's line too: the run's tree is read."""
    with engine.begin() as conn:
        tree = run_tree(conn, run_id)
        ledger = conn.execute(
            select(_BILLED, func.coalesce(func.sum(L.c.cost_micros), 0)).where(
                L.c.caller_id == caller_id, L.c.run_id.in_(tree), L.c.started_at >= since
            )
        ).one()
        intents = [
            Intent(**{k: v for k, v in row._mapping.items()})
            for row in conn.execute(
                select(I).where(I.c.caller_id == caller_id, I.c.run_id.in_(tree))
            )
        ]
        upsert_rows(conn, [_unknown_row(intent) for intent in intents])
        if intents:
            conn.execute(delete(I).where(I.c.call_id.in_([i.call_id for i in intents])))
    return Recorded(
        ledger_micros=int(ledger[1]),
        ledger_calls=int(ledger[0]),
        in_flight_micros=sum(i.reserved_micros for i in intents),
        in_flight_calls=len(intents),
    )


def recorded_for_key(
    engine: Engine, caller_id: str, key_id: str, start: datetime, end: datetime
) -> Recorded:
    """What a silent caller left for a key's period (calls that started in ``[start, end)``):
    its ledger rows and its intents, read in one statement so a run turning intents into rows
    meanwhile is counted once."""
    rows = (
        select(
            _BILLED.label("n"),
            func.coalesce(func.sum(L.c.cost_micros), 0).label("micros"),
            text("0 AS intent"),
        )
        .where(
            L.c.caller_id == caller_id,
            L.c.key_id == key_id,
            L.c.started_at >= start,
            L.c.started_at < end,
        )
        .union_all(
            select(
                func.count(),
                func.coalesce(func.sum(I.c.reserved_micros), 0),
                text("1"),
            ).where(
                I.c.caller_id == caller_id,
                I.c.key_id == key_id,
                I.c.started_at >= start,
                I.c.started_at < end,
            )
        )
    )
    with engine.connect() as conn:
        found = {int(r.intent): (int(r.n), int(r.micros)) for r in conn.execute(rows)}
    ledger, intents = found.get(0, (0, 0)), found.get(1, (0, 0))
    return Recorded(ledger[1], ledger[0], intents[1], intents[0])


def _unknown_row(intent: Intent) -> LedgerRow:
    return LedgerRow(
        call_id=intent.call_id,
        run_id=intent.run_id,
        key_id=intent.key_id,
        tags=list(intent.tags),
        requested_model=intent.requested_model,
        provider=intent.provider,
        model=intent.model,
        status="unknown",
        attempts=[],
        usage=Usage(),
        cost_micros=intent.reserved_micros,
        reserved_micros=intent.reserved_micros,
        started_at=_utc(intent.started_at).isoformat(),
        latency_ms=0,
        error=UNKNOWN_OUTCOME,
        caller_id=intent.caller_id,
    )


def held_by_runs(engine: Engine, run_ids: Sequence[str]) -> dict[str, int]:
    """What the calls in flight of each run hold now (runs with none are absent)."""
    if not run_ids:
        return {}
    query = (
        select(I.c.run_id, func.coalesce(func.sum(I.c.reserved_micros), 0))
        .where(I.c.run_id.in_(list(run_ids)))
        .group_by(I.c.run_id)
    )
    with engine.connect() as conn:
        return {run_id: int(held) for run_id, held in conn.execute(query)}


def key_period_figures(
    engine: Engine, key_id: str, start: datetime, end: datetime
) -> tuple[int, int]:
    """What a key spent on calls that started in ``[start, end)`` (its ledger), and what its
    calls in flight that started then hold (its intents)."""
    spent = select(func.coalesce(func.sum(L.c.cost_micros), 0)).where(
        L.c.key_id == key_id, L.c.started_at >= start, L.c.started_at < end
    )
    held = select(func.coalesce(func.sum(I.c.reserved_micros), 0)).where(
        I.c.key_id == key_id, I.c.started_at >= start, I.c.started_at < end
    )
    with engine.connect() as conn:
        return int(conn.execute(spent).scalar() or 0), int(conn.execute(held).scalar() or 0)


def nudge(engine: Engine, keeper_ids: Sequence[str], at_ms: int) -> None:
    """Ask the borrowers of these keepers to report at once."""
    if not keeper_ids:
        return
    with engine.begin() as conn:
        for keeper_id in dict.fromkeys(keeper_ids):
            done = conn.execute(update(N).where(N.c.keeper_id == keeper_id).values(at_ms=at_ms))
            if not done.rowcount:
                try:
                    with conn.begin_nested():
                        conn.execute(N.insert().values(keeper_id=keeper_id, at_ms=at_ms))
                except IntegrityError:
                    conn.execute(update(N).where(N.c.keeper_id == keeper_id).values(at_ms=at_ms))


def nudged_since(engine: Engine, since_ms: int) -> list[tuple[str, int]]:
    """Keepers nudged after ``since_ms``, with when."""
    with engine.connect() as conn:
        rows = conn.execute(select(N.c.keeper_id, N.c.at_ms).where(N.c.at_ms > since_ms))
        return [(row.keeper_id, int(row.at_ms)) for row in rows]


def forget_nudges(engine: Engine, before_ms: int) -> int:
    with engine.begin() as conn:
        return int(conn.execute(delete(N).where(N.c.at_ms < before_ms)).rowcount or 0)


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)
