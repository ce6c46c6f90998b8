"""Database tables: virtual keys, the ledger, alerts and shared rate limits, as SQLModel families
(Base -> table/Create/Update/Public).

Why a ``ledger_tags`` child table: spend queries group and filter by tag (``group_by=tag:step``,
``tag=task:123``), and a normalised (prefix, tag) row lets the database do that in SQL on both
SQLite and PostgreSQL, where a JSON column would need dialect-specific JSON operators.
Money is integer micro-dollars (BIGINT); times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator, model_validator
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    event,
)
from sqlmodel import Field, SQLModel

MAX_BUDGET_USD = 1_000_000
MAX_MODELS = 256
BUDGET_PERIODS = ("run", "day", "month", "total")
"""A key's budgets: per run (each run's cap), per calendar day, per calendar month, and its total
over its whole life. Every key has a total, a day or a month cap: its spend is always bounded."""
DEFAULT_MAX_OPEN_RUNS = 100
RUN_BY = ("task", "session")
"""What can make a run of its own, in a key's ``run_by``: a call's ``task:`` tag, its agent's
session. A call with neither (or a key with an empty ``run_by``) is the key's own run."""
Budget = Decimal | None
Share = Decimal | None


def utcnow() -> datetime:
    """Now, timezone-aware UTC (what every stored time is)."""
    return datetime.now(UTC)


class VirtualKeyBase(SQLModel):
    """The policy fields a client sets and reads back."""

    name: str = Field(min_length=1, max_length=100)
    max_parallel: int = Field(default=0, ge=0, le=10_000)
    """Parallel calls per key; 0 is unlimited."""
    rpm: int = Field(default=0, ge=0, le=10_000_000)
    tpm: int = Field(default=0, ge=0, le=10_000_000_000, sa_type=BigInteger)
    models: list[str] = Field(default_factory=list, sa_type=JSON)
    """Models the key may request; empty allows all."""
    tags: list[str] = Field(default_factory=list, sa_type=JSON)
    """Default tags added to every call made with the key."""
    timezone: str = Field(default="UTC", max_length=64)
    """IANA zone whose midnight starts the key's day and month budgets."""
    loop_max_repeats: int = Field(default=0, ge=0, le=10_000)
    """Loop guard: a run that sends the same request this many times within
    ``loop_window_seconds`` is paused (0: off)."""
    loop_window_seconds: int = Field(default=300, ge=1, le=86_400)
    max_open_runs: int = Field(default=DEFAULT_MAX_OPEN_RUNS, ge=1, le=100_000)
    """Runs of this key open at once (a task tag or an agent's session each make one): a new
    run past it is refused with 429 ``too_many_runs``."""
    run_by: list[str] = Field(default_factory=lambda: list(RUN_BY), sa_type=JSON)
    """What makes a run, first match wins: ``task`` (a ``task:`` tag), ``session`` (the
    session id Claude Code or Codex sends); else the key's own run."""
    hold_at_cap: bool = False
    """A run at its per-run cap pauses until a person approves more budget, rather than refuse
    for good (its calls get 429 ``run_held`` meanwhile)."""


def valid_models(models: list[str] | None) -> list[str] | None:
    """Model names, each 1 to 200 characters, duplicates dropped (``None``: not sent)."""
    if models is None:
        return None
    if len(models) > MAX_MODELS or any(not 1 <= len(m) <= 200 for m in models):
        raise ValueError(f"at most {MAX_MODELS} model names of 1 to 200 characters")
    return list(dict.fromkeys(models))


def valid_run_by(run_by: list[str] | None) -> list[str] | None:
    """A ``run_by`` list: some of ``task`` and ``session``, each once (``None``: not sent)."""
    if run_by is None:
        return None
    if any(each not in RUN_BY for each in run_by) or len(set(run_by)) != len(run_by):
        raise ValueError(f"run_by lists some of {', '.join(RUN_BY)}, each at most once")
    return list(run_by)


def valid_timezone(name: str | None) -> str | None:
    """An IANA zone name ``zoneinfo`` knows (``UTC``, ``Europe/Paris``...); ``None``: not sent."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r}: use an IANA name such as Europe/Paris"
        ) from None
    return name


def budget_field() -> Any:
    """An optional budget in USD, exact to the micro-dollar."""
    return Field(default=None, gt=0, le=MAX_BUDGET_USD, decimal_places=6)


def share_field() -> Any:
    """A sub-agent's share of its parent's remaining budget: above 0, at most 1, exact to the
    millionth (``None``: no cap of its own; its parent's cap bounds it anyway)."""
    return Field(default=None, gt=0, le=1, decimal_places=6)


class VirtualKey(VirtualKeyBase, table=True):
    """A virtual key: only the secret's sha256 is stored, never the secret."""

    __tablename__ = "virtual_keys"

    id: str = Field(primary_key=True, max_length=40)
    key_hash: str = Field(unique=True, index=True, max_length=64)
    key_prefix: str = Field(max_length=16)
    budget_per_run_micros: int | None = Field(default=None, sa_type=BigInteger)
    """The cap of each run made with this key."""
    budget_per_day_micros: int | None = Field(default=None, sa_type=BigInteger)
    budget_per_month_micros: int | None = Field(default=None, sa_type=BigInteger)
    budget_total_micros: int | None = Field(default=None, sa_type=BigInteger)
    """The most the key spends over its whole life."""
    subagent_share_ppm: int | None = None
    """A sub-agent's run is capped at this share (in millionths) of its parent's remaining
    budget when it opens."""
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class VirtualKeyCreate(VirtualKeyBase):
    """``POST /admin/keys``: budgets arrive in USD, exact to the micro-dollar.

    ``budget_usd`` is the key's total: the most it spends over its whole life. A key needs a
    total, a day or a month budget (a per-run budget alone would let every new run spend
    afresh); its runs are capped at ``budget_usd_per_run``, else at the key's budget.
    """

    budget_usd: Budget = budget_field()
    budget_usd_per_run: Budget = budget_field()
    budget_usd_per_day: Budget = budget_field()
    budget_usd_per_month: Budget = budget_field()
    subagent_budget_share: Share = share_field()

    _models = field_validator("models")(valid_models)
    _timezone = field_validator("timezone")(valid_timezone)
    _run_by = field_validator("run_by")(valid_run_by)

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if (self.budget_usd, self.budget_usd_per_day, self.budget_usd_per_month) == (
            None,
            None,
            None,
        ):
            raise ValueError(
                "a key needs a bounded budget: budget_usd (its total), budget_usd_per_day or "
                "budget_usd_per_month; budget_usd_per_run alone caps each run, not the key"
            )
        return self


class VirtualKeyUpdate(SQLModel):
    """``PATCH /admin/keys/{id}``: only the fields sent change; ``null`` drops a budget."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    budget_usd: Budget = budget_field()
    budget_usd_per_run: Budget = budget_field()
    budget_usd_per_day: Budget = budget_field()
    budget_usd_per_month: Budget = budget_field()
    max_parallel: int | None = Field(default=None, ge=0, le=10_000)
    rpm: int | None = Field(default=None, ge=0, le=10_000_000)
    tpm: int | None = Field(default=None, ge=0, le=10_000_000_000)
    models: list[str] | None = None
    tags: list[str] | None = None
    timezone: str | None = Field(default=None, max_length=64)
    loop_max_repeats: int | None = Field(default=None, ge=0, le=10_000)
    loop_window_seconds: int | None = Field(default=None, ge=1, le=86_400)
    max_open_runs: int | None = Field(default=None, ge=1, le=100_000)
    run_by: list[str] | None = None
    subagent_budget_share: Share = share_field()
    hold_at_cap: bool | None = None

    _models = field_validator("models")(valid_models)
    _timezone = field_validator("timezone")(valid_timezone)
    _run_by = field_validator("run_by")(valid_run_by)


class VirtualKeyPublic(VirtualKeyBase):
    """A key as the admin api shows it: no secret, no hash."""

    id: str
    key_prefix: str
    budget_usd_per_run: str | None
    budget_usd_per_day: str | None
    budget_usd_per_month: str | None
    budget_usd: str | None
    """The key's total over its whole life."""
    subagent_budget_share: str | None
    revoked: bool
    revoked_at: datetime | None
    created_at: datetime


class VirtualKeyCreated(VirtualKeyPublic):
    """The answer of a key creation, the only time the secret is shown."""

    key: str


class LedgerEntryBase(SQLModel):
    """One settled call: who, what, which target, how much."""

    run_id: str = Field(index=True, max_length=200)
    key_id: str = Field(index=True, max_length=40)
    tags: list[str] = Field(default_factory=list, sa_type=JSON)
    requested_model: str = Field(default="", max_length=200)
    provider: str = Field(default="", max_length=100)
    model: str = Field(default="", max_length=200)
    status: str = Field(default="ok", max_length=16)
    attempts: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    input_tokens: int = Field(default=0, sa_type=BigInteger)
    output_tokens: int = Field(default=0, sa_type=BigInteger)
    cached_input_tokens: int = Field(default=0, sa_type=BigInteger)
    cache_write_tokens: int = Field(default=0, sa_type=BigInteger)
    latency_ms: int = 0
    error: str = ""
    caller_id: str = Field(default="", max_length=100)
    """The caller process that made the call: a crash reconciliation reads its rows."""


class LedgerEntry(LedgerEntryBase, table=True):
    """The ledger row, keyed by call id so a retried write is an upsert, not a second charge."""

    __tablename__ = "ledger"
    __table_args__ = (
        Index("ix_ledger_caller_run", "caller_id", "run_id"),
        Index("ix_ledger_caller_key_started", "caller_id", "key_id", "started_at"),
    )

    call_id: str = Field(primary_key=True, max_length=200)
    cost_micros: int = Field(default=0, sa_type=BigInteger)
    reserved_micros: int = Field(default=0, sa_type=BigInteger)
    started_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    settled_at: datetime = Field(
        default_factory=utcnow, sa_type=DateTime(timezone=True), index=True
    )
    """When the row was first written: the order ``runcap tail`` follows (an upsert keeps it)."""


class LedgerEntryPublic(LedgerEntryBase):
    """A ledger row as the admin api shows it, money in USD strings."""

    call_id: str
    cost_usd: str
    reserved_usd: str
    started_at: datetime
    settled_at: datetime


class LedgerTag(SQLModel, table=True):
    """One tag of one call, split into prefix and whole tag so SQL can group and filter."""

    __tablename__ = "ledger_tags"

    call_id: str = Field(
        sa_column=Column(
            String(200), ForeignKey("ledger.call_id", ondelete="CASCADE"), primary_key=True
        )
    )
    tag: str = Field(primary_key=True, max_length=128, index=True)
    prefix: str = Field(max_length=128, index=True)


class IdempotentRequest(SQLModel, table=True):
    """A request sent with an ``Idempotency-Key``: its answer, kept 24 h, scoped to the key.

    ``state`` is ``pending`` while the first request runs (``owner`` is the caller instance
    running it) and ``done`` once its answer is stored. ``request_hash`` tells a true retry
    from a different request reusing the key.
    """

    __tablename__ = "idempotent_requests"

    key_id: str = Field(primary_key=True, max_length=40)
    idem_hash: str = Field(primary_key=True, max_length=64)
    request_hash: str = Field(max_length=64)
    call_id: str = Field(max_length=200)
    owner: str = Field(max_length=100)
    state: str = Field(default="pending", max_length=16)
    status_code: int = 0
    content_type: str = Field(default="", max_length=100)
    body: bytes = Field(default=b"", sa_type=LargeBinary)
    headers: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=DateTime(timezone=True), index=True
    )


class SignedOutSession(SQLModel, table=True):
    """A dashboard session signed out before it expired: every api process refuses it until
    ``expires_at``, when the row may go (sign-outs delete the expired ones)."""

    __tablename__ = "ui_signed_out"

    sid: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)


class AlertRecordBase(SQLModel):
    """What an alert was about: which run or key period, which kind, the sentence."""

    run_id: str = Field(index=True, max_length=200)
    key_id: str = Field(default="", max_length=40)
    kind: str = Field(max_length=16)
    """``threshold``, ``refused``, ``overrun`` or ``loop`` (see ``workflows.contracts.Alert``)."""
    threshold_percent: int = 0
    scope: str = Field(default="run", max_length=8)
    """``run`` (the run's own budget), or the key's ``day`` or ``month``."""
    period: str = Field(default="", max_length=16)
    """The day (``2026-11-28``) or month (``2026-11``) of a period alert; empty for a run."""
    detail: str = Field(default="", max_length=1000)
    """The sentence a human reads: what happened and what to do."""
    attempts: int = 0
    """Webhook deliveries tried (a retried activity adds one each)."""
    delivered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    """When the webhook accepted it (a 2xx); set once, and then never sent again."""
    last_error: str = Field(default="", max_length=200)
    """Why the latest delivery failed, if it did (never the URL: it may hold a token)."""


class AlertRecord(AlertRecordBase, table=True):
    """One alert, recorded before its webhook delivery. The id is the alert's event id, so a
    retried activity, or the same alert decided twice, is one row and one delivery."""

    __tablename__ = "alerts"

    id: str = Field(primary_key=True, max_length=200)
    budget_micros: int = Field(default=0, sa_type=BigInteger)
    spent_micros: int = Field(default=0, sa_type=BigInteger)
    at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    claimed_until: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    """Held while one attempt is posting, so two attempts of one event never post at once; a
    crashed attempt's hold simply expires."""


class AlertRecordPublic(AlertRecordBase):
    """An alert as the admin api shows it: its event id, money in USD strings, its sentence
    (``message``) and how its delivery went."""

    id: str
    event_id: str
    budget_usd: str
    spent_usd: str
    at: datetime
    message: str


class RateWindow(SQLModel, table=True):
    """Requests and tokens one key used in one fixed minute, counted by every api instance.

    ``window_start`` is in epoch seconds (a multiple of 60): the limiter compares and adds these
    numbers inside one SQL statement, the same on SQLite and PostgreSQL. Unlogged on PostgreSQL
    (see ``LIMIT_TABLES``).
    """

    __tablename__ = "rate_windows"

    key_id: str = Field(primary_key=True, max_length=40)
    window_start: int = Field(primary_key=True, sa_type=BigInteger)
    requests: int = 0
    tokens: int = Field(default=0, sa_type=BigInteger)


class CallSlot(SQLModel, table=True):
    """One running call of a key that has ``max_parallel``; gone when the call ends.

    ``owner`` is the api instance running the call; it pushes ``expires_at_ms`` (epoch
    milliseconds) forward every few seconds, so the slots of an instance that died stop
    counting once their lease runs out. Unlogged on PostgreSQL (see ``LIMIT_TABLES``).
    """

    __tablename__ = "call_slots"

    slot_id: str = Field(primary_key=True, max_length=32)
    key_id: str = Field(index=True, max_length=40)
    owner: str = Field(index=True, max_length=32)
    expires_at_ms: int = Field(sa_type=BigInteger)


LIMIT_TABLES = ("rate_windows", "call_slots")
"""UNLOGGED on PostgreSQL: a count worth keeping for a minute needs no write-ahead log, so a
call's admission and release commit without waiting for a disk flush (measured in
``bench/limits.py``); after a server crash these tables come back empty, and the limits start
afresh, which is harmless."""


def _unlogged(table: Table, connection: Connection, **_: Any) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ALTER TABLE {table.name} SET UNLOGGED")


for _name in LIMIT_TABLES:
    event.listen(SQLModel.metadata.tables[_name], "after_create", _unlogged)
