"""Keepers without Temporal, for the caller-side lending tests: each keeper's own pure book
(``RunBook``, ``PeriodBook``) answers ``lend`` in this process, through a copy of the request
and of the answer, as Temporal's converter would make them."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from datetime import UTC, datetime, timedelta

from caller.errors import CallFailed
from caller.lines import Keeper
from workflows import errors
from workflows.key_contracts import KeyBudgetInput, PeriodBooks
from workflows.lending_contracts import Books, LendAnswer, LendRequest
from workflows.period_book import PeriodBook
from workflows.run_book import RunBook, opening_books


class InProcessKeepers:
    """Answers ``lend`` for runs and key periods from their books; counts requests."""

    def __init__(self) -> None:
        self.runs: dict[str, RunBook] = {}
        self.periods: dict[str, PeriodBook] = {}
        self.requests: Counter[str] = Counter()
        self.needs: Counter[str] = Counter()
        """Requests that carried calls waiting for a grant: hops on a call's path."""
        self.now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def books(self, keeper_id: str) -> Books:
        book = self.runs.get(keeper_id) or self.periods[keeper_id]
        return book.state.books

    async def lend(self, keeper: Keeper, req: LendRequest) -> LendAnswer:
        await asyncio.sleep(0)  # a hop: other calls run meanwhile
        self.requests[keeper.workflow_id] += 1
        if req.needs:
            self.needs[keeper.workflow_id] += 1
        req = copy.deepcopy(req)
        book: RunBook | PeriodBook
        if keeper.is_run:
            if keeper.workflow_id not in self.runs:
                if keeper.start is None:
                    raise CallFailed.of(errors.RUN_NOT_OPEN, "no such run")
                self.runs[keeper.workflow_id] = RunBook(
                    keeper.start, opening_books(keeper.start, self.now)
                )
            book = self.runs[keeper.workflow_id]
        else:
            if keeper.workflow_id not in self.periods:
                start = keeper.start
                assert isinstance(start, KeyBudgetInput)
                state = PeriodBooks(Books(cap_micros=start.cap_micros))
                self.periods[keeper.workflow_id] = PeriodBook(start, state)
            book = self.periods[keeper.workflow_id]
        if book.lender.is_reconciled(req.borrower, req.opened_at):
            raise CallFailed.of(errors.LINE_GONE, "billed after going silent")
        answer = book.lend(req, self.now)
        await asyncio.sleep(0)
        return copy.deepcopy(answer)
