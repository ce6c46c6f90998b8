"""Database tables: virtual keys and the ledger, as SQLModel families (Base -> table/Create/Public).

Why a ``ledger_tags`` child table: spend queries group and filter by tag (``group_by=tag:step``,
``tag=task:123``), and a normalised (prefix, tag) row lets the database do that in SQL on both
SQLite and PostgreSQL, where a JSON column would need dialect-specific JSON operators.
Money is integer micro-dollars (BIGINT); times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import field_validator
from sqlalchemy import JSON, BigInteger, Column, DateTime, ForeignKey, LargeBinary, String
from sqlmodel import Field, SQLModel

MAX_BUDGET_USD = 1_000_000
MAX_MODELS = 256


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


class VirtualKey(VirtualKeyBase, table=True):
    """A virtual key: only the secret's sha256 is stored, never the secret."""

    __tablename__ = "virtual_keys"

    id: str = Field(primary_key=True, max_length=40)
    key_hash: str = Field(unique=True, index=True, max_length=64)
    key_prefix: str = Field(max_length=16)
    budget_micros: int = Field(sa_type=BigInteger)
    """The cap of each run made with this key."""
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class VirtualKeyCreate(VirtualKeyBase):
    """``POST /admin/keys``: the per-run budget arrives in USD, exact to the micro-dollar."""

    budget_usd: Decimal = Field(gt=0, le=MAX_BUDGET_USD, decimal_places=6)

    @field_validator("models")
    @classmethod
    def _models_are_names(cls, models: list[str]) -> list[str]:
        if len(models) > MAX_MODELS or any(not 1 <= len(m) <= 200 for m in models):
            raise ValueError(f"at most {MAX_MODELS} model names of 1 to 200 characters")
        return list(dict.fromkeys(models))


class VirtualKeyPublic(VirtualKeyBase):
    """A key as the admin api shows it: no secret, no hash."""

    id: str
    key_prefix: str
    budget_usd: str
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


class LedgerEntry(LedgerEntryBase, table=True):
    """The ledger row, keyed by call id so a retried write is an upsert, not a second charge."""

    __tablename__ = "ledger"

    call_id: str = Field(primary_key=True, max_length=200)
    cost_micros: int = Field(default=0, sa_type=BigInteger)
    reserved_micros: int = Field(default=0, sa_type=BigInteger)
    started_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)


class LedgerEntryPublic(LedgerEntryBase):
    """A ledger row as the admin api shows it, money in USD strings."""

    call_id: str
    cost_usd: str
    reserved_usd: str
    started_at: datetime


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
