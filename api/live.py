"""A run's live figures that already include every call its client has been answered for.

The run's workflow is the reference, but settlements reach it in batches, a few hundred ms after
the answers. The ledger row of a call is written before its answer goes out. So a call still
open in the workflow whose ledger row says how it ended is counted as the ledger says: the next
read after an answer shows it, from any api instance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy import Engine, or_, select

from db.models import LedgerEntry
from workflows.budget import step_of
from workflows.contracts import RunSpend, StepSpend

ENDED = ("ok", "failed", "cancelled", "broken", "unknown")
L = LedgerEntry.__table__  # type: ignore[attr-defined]


def ended_rows(engine: Engine, call_ids: Sequence[str]) -> list[LedgerEntry]:
    """Ledger rows of calls that ended, among ``call_ids`` and under those that are advances
    (blocking)."""
    if not call_ids:
        return []
    among = [L.c.call_id.in_(list(call_ids))]
    among += [L.c.call_id.startswith(f"{cid}/") for cid in call_ids if cid.startswith("adv-")]
    with engine.connect() as conn:
        query = select(L).where(or_(*among), L.c.status.in_(ENDED))
        return [LedgerEntry.model_validate(r._mapping) for r in conn.execute(query)]


def with_unsettled(spend: RunSpend, rows: Sequence[LedgerEntry]) -> RunSpend:
    """``spend`` with each open call that has an ended ledger row counted as settled."""
    open_calls = dict(spend.open_calls)
    by_step = {k: dataclasses.replace(v) for k, v in spend.by_step.items()}
    by_model = {k: dataclasses.replace(v) for k, v in spend.by_model.items()}
    spent, reserved = spend.spent_micros, spend.reserved_micros
    calls, failed = spend.calls, spend.failed_calls
    for row in rows:
        advance, under, _ = row.call_id.partition("/")
        if under:  # a call under an advance: its cost moves out of the advance
            if advance not in open_calls or row.call_id in spend.settled_under.get(advance, []):
                continue
            held = min(row.cost_micros, open_calls[advance])
            open_calls[advance] -= held
        elif row.call_id in open_calls:
            held = open_calls.pop(row.call_id)
        else:
            continue
        reserved -= held
        if row.status == "failed":
            failed += 1
            continue
        spent += row.cost_micros
        calls += 1
        tokens_in = row.input_tokens + row.cached_input_tokens + row.cache_write_tokens
        for table, key in ((by_step, step_of(row.tags)), (by_model, row.model)):
            step = table.setdefault(key, StepSpend())
            step.calls += 1
            step.cost_micros += row.cost_micros
            step.input_tokens += tokens_in
            step.output_tokens += row.output_tokens
    return dataclasses.replace(
        spend,
        spent_micros=spent,
        reserved_micros=reserved,
        remaining_micros=max(spend.budget_micros - spent - reserved, 0),
        calls=calls,
        failed_calls=failed,
        by_step=by_step,
        by_model=by_model,
        open_calls=open_calls,
    )
