"""The caller's journal: intents and ledger rows, group-committed; runs opened; nudges.

Why group commit: at 50 calls in flight a transaction per write would cost a commit each;
writes that arrive while one is under way wait and go together in the next transaction, so a
burst costs a few commits, and every call still knows its own intent is stored before it goes
out, and its row before its answer's last byte does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from temporalio.converter import value_to_type

from db.journal import (
    Intent,
    Opening,
    OpenResult,
    mark_started,
    nudge,
    nudged_since,
    open_run,
    reopen_run,
    run_row,
    tree_spend,
    write_intents,
)
from db.ledger import write_rows
from workflows.contracts import LedgerRow
from workflows.run_contracts import RunInput

log = logging.getLogger(__name__)
MAX_BATCH = 500
NUDGES_WITHIN_MS = 2_000
"""Nudges are read this far back (instances' clocks may disagree a little); each is handled
once."""


@dataclass
class _Write:
    intent: Intent | None
    row: LedgerRow | None
    done: asyncio.Future[bool]


class Journal:
    """This process's writes to the journal; ``intend`` and ``record`` return once committed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._waiting: list[_Write] = []
        self._writing: asyncio.Task[None] | None = None
        self._heard: dict[tuple[str, int], float] = {}
        self._poller: asyncio.Task[None] | None = None

    async def intend(self, intent: Intent) -> bool:
        """Record a call about to go out; False when the database refused it (the call must
        then not go out: a crash could not be billed right)."""
        return await self._write(_Write(intent, None, self._future()))

    async def record(self, row: LedgerRow) -> bool:
        """Store ``row`` (its intent goes in the same transaction); False when the database
        refused it (the run then writes it)."""
        return await self._write(_Write(None, row, self._future()))

    @staticmethod
    def _future() -> asyncio.Future[bool]:
        return asyncio.get_running_loop().create_future()

    async def _write(self, write: _Write) -> bool:
        self._waiting.append(write)
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._drain())
        return await asyncio.shield(write.done)

    async def _drain(self) -> None:
        """Commit what waits, intents first: a call about to go out waits behind at most the
        transaction under way, never behind a batch of rows of calls that already answered."""
        while self._waiting:
            intents = [w for w in self._waiting if w.intent is not None]
            batch = (intents or self._waiting)[:MAX_BATCH]
            taken = {id(w) for w in batch}
            self._waiting = [w for w in self._waiting if id(w) not in taken]
            ready = [w.intent for w in batch if w.intent is not None]
            rows = {w.row.call_id: w.row for w in batch if w.row is not None}  # last word wins
            try:
                await asyncio.to_thread(self._commit, ready, list(rows.values()))
                ok = True
            except Exception:
                log.warning("journal write of %d intents, %d rows failed", len(ready), len(rows))
                ok = False
            for write in batch:
                if not write.done.done():
                    write.done.set_result(ok)

    def _commit(self, intents: Sequence[Intent], rows: Sequence[LedgerRow]) -> None:
        if intents:
            write_intents(self.engine, intents)
        if rows:
            write_rows(self.engine, rows)

    async def open_run(self, opening: Opening) -> tuple[OpenResult, dict[str, Any] | None]:
        return await asyncio.to_thread(open_run, self.engine, opening)

    async def reopen_run(self, run_id: str, key_id: str, max_open: int) -> bool:
        return await asyncio.to_thread(reopen_run, self.engine, run_id, key_id, max_open)

    async def run_input(self, run_id: str) -> RunInput | None:
        """The input a run was opened with, when it has a row that says."""
        row = await asyncio.to_thread(run_row, self.engine, run_id)
        if row is None or row.start_input is None:
            return None
        run: RunInput = value_to_type(RunInput, row.start_input, [])
        return run

    async def tree_spend(self, run_id: str) -> tuple[int, int]:
        return await asyncio.to_thread(tree_spend, self.engine, run_id)

    async def mark_started(self, run_id: str) -> None:
        await asyncio.to_thread(mark_started, self.engine, run_id)

    async def nudge(self, keeper_ids: Sequence[str]) -> None:
        """Ask the borrowers of these keepers to hand unused room back."""
        try:
            await asyncio.to_thread(nudge, self.engine, keeper_ids, _now_ms())
        except Exception:
            log.warning("could not nudge %s", list(keeper_ids), exc_info=True)

    def listen(self, heard: Callable[[str], None], every: float) -> None:
        """Call ``heard(keeper_id)`` for each nudge, polling every ``every`` seconds."""
        self._poller = asyncio.create_task(self._poll(heard, every))

    async def _poll(self, heard: Callable[[str], None], every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                found = await asyncio.to_thread(
                    nudged_since, self.engine, _now_ms() - NUDGES_WITHIN_MS
                )
            except Exception:
                log.info("could not read nudges", exc_info=True)
                continue
            now = time.monotonic()
            for nudged in found:
                if nudged not in self._heard:
                    self._heard[nudged] = now
                    heard(nudged[0])
            for old in [k for k, at in self._heard.items() if now - at > 10]:
                del self._heard[old]

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._writing is not None:
            with contextlib.suppress(Exception):
                await self._writing


def _now_ms() -> int:
    return int(time.time() * 1000)
