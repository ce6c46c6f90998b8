"""The caller's ledger writes: each call's row lands before its answer's last byte goes out.

Why group commit: at 50 calls in flight a row per transaction would cost a commit each; rows
that arrive while a write is under way wait and go together in the next transaction, so a burst
costs a few commits, and every call still knows its own row is stored before it answers.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from db.ledger import write_rows
from workflows.contracts import LedgerRow

log = logging.getLogger(__name__)
MAX_BATCH = 500


class LedgerWriter:
    """Writes rows in batches on a thread; ``write`` returns once its row is committed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._waiting: list[tuple[LedgerRow, asyncio.Future[bool]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def write(self, row: LedgerRow) -> bool:
        """Store ``row``; False when the database refused it (the run then writes it)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, done))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._drain())
        return await asyncio.shield(done)

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            rows = {row.call_id: row for row, _ in batch}  # the last word on a call id wins
            try:
                await asyncio.to_thread(write_rows, self.engine, list(rows.values()))
                ok = True
            except Exception:
                log.warning("ledger write of %d rows failed; the runs will write them", len(rows))
                ok = False
            for _, done in batch:
                if not done.done():
                    done.set_result(ok)
