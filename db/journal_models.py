"""The journal's tables: what lets api instances spend lent money with no Temporal hop and still
bill exactly after a crash (see ``workflows.lending``).

- ``calls_in_flight``: an intent, written before a call goes out and deleted in the transaction
  that writes its ledger row. A borrower that dies is billed its intents at their reservations
  (those calls may have gone out) and nothing for calls it never started.
- ``runs``: one row per run. The instance that inserts it opens the run with a line it holds at
  once (its workflow starts a moment later, off the call's path); the row's uniqueness is what
  stops two instances from both opening one run with fresh money. It also counts a key's open
  runs (``max_open_runs``).
- ``nudges``: a keeper's word to every borrower holding a line there ("report now"): a call that
  needs room recalls unused room this way, and an admin change reaches the lines at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index
from sqlmodel import Field, SQLModel


class CallInFlight(SQLModel, table=True):
    """A call that may have gone out to a provider and has no ledger row yet."""

    __tablename__ = "calls_in_flight"
    __table_args__ = (Index("ix_calls_in_flight_caller_run", "caller_id", "run_id"),)

    call_id: str = Field(primary_key=True, max_length=200)
    run_id: str = Field(max_length=200, index=True)
    key_id: str = Field(max_length=40, index=True)
    caller_id: str = Field(max_length=100)
    reserved_micros: int = Field(sa_type=BigInteger)
    started_at: datetime = Field(sa_type=DateTime(timezone=True))
    tags: list[str] = Field(default_factory=list, sa_type=JSON)
    requested_model: str = Field(default="", max_length=200)
    provider: str = Field(default="", max_length=100)
    model: str = Field(default="", max_length=200)
    """The chain's first target: what an ``unknown`` ledger row names if the caller dies."""


class RunRecord(SQLModel, table=True):
    """A run as the database knows it: who opened it with what line, and whether it is open."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_key_open", "key_id", "closed_at"),)

    run_id: str = Field(primary_key=True, max_length=200)
    key_id: str = Field(max_length=40)
    opened_by: str = Field(max_length=100)
    """The borrower (caller id) that opened it and held its first line."""
    opening_micros: int = Field(default=0, sa_type=BigInteger)
    """That first line, which the run's workflow learns when it starts."""
    opened_at: datetime = Field(sa_type=DateTime(timezone=True))
    started: bool = False
    """Its workflow is known to have started (else the worker's janitor starts it)."""
    start_input: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    """The workflow's input (a ``RunInput``, its opening line included), for whoever starts it."""
    closed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    parent_run_id: str | None = Field(default=None, max_length=200, index=True)
    """The run of the agent that started this one's sub-agent: spend rolls up to it."""


class Nudge(SQLModel, table=True):
    """The last time someone asked a keeper's borrowers to report at once."""

    __tablename__ = "nudges"

    keeper_id: str = Field(primary_key=True, max_length=220)
    at_ms: int = Field(sa_type=BigInteger, index=True)
    """Epoch milliseconds."""
