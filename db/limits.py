"""Per-key rate limits kept in the database, so every api instance counts against one figure.

Why the database and not the key's ``KeyBudget`` workflow: every api instance already talks to
it (SQLite in dev, PostgreSQL in production); an admission is one short statement or
transaction (``bench/limits.py`` measures it) where a workflow update is a Temporal round trip
and a history event per call; and a limit, unlike a budget, needs no durable history: a count
a minute old is worthless (so on PostgreSQL both tables are UNLOGGED, see ``db.models``). Only
keys with a limit pay: a key with rpm, tpm and max_parallel all 0 never reaches this module.

- Requests and tokens per minute: one counter row per (key, fixed minute), bumped by one
  ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` that only counts the call when it fits. Both
  databases run it atomically (PostgreSQL locks the conflicting row and re-checks the
  condition), so N instances admit at most the limit per minute, plus one window's worth across
  a minute boundary (the price of a fixed window). Tokens are charged at admission with the
  caller's bound, as the in-process limiter did; a request larger than the whole tpm passes
  alone in an empty minute, or it could never pass.
- Parallel calls: one slot row per running call, inserted only while the key's live slots are
  below ``max_parallel``. On SQLite the conditional insert holds the database's single write
  lock while it counts; on PostgreSQL a transaction-scoped advisory lock on the key serialises
  admissions of that key (not of others, and without locking the key's row that admin edits
  and revokes update) before the count. A slot has a lease that its instance renews every few
  seconds, one statement for all the slots it holds, named by id: the slots of an instance
  that died, and a slot whose taking or giving back failed midway, stop counting when their
  lease ends.
- A refused call takes nothing: the slot and the minute's count are one transaction.

Times come from an injected clock (epoch seconds), so the tests roll windows and leases over
without waiting. Instances' clocks are assumed to agree to well under a lease (NTP).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, Engine, TextClause, bindparam, text

WINDOW_SECONDS = 60
SLOT_LEASE_SECONDS = 15.0
RENEW_BATCH = 500
PARALLEL_RETRY_SECONDS = 1.0
"""What a refusal for parallel calls suggests waiting: calls end at any moment."""
_PG_LOCK_SPACE = 0x7263_6170  # "rcap": runcap's class of advisory locks, apart from others'

_TAKE_SLOT = text(
    "INSERT INTO call_slots (slot_id, key_id, owner, expires_at_ms) "
    "SELECT :slot, :new_key, :owner, :expires "
    "WHERE (SELECT count(*) FROM call_slots WHERE key_id = :key AND expires_at_ms > :now) < :limit"
)
_PG_LOCK_KEY = text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))")
_GIVE_BACK = text("DELETE FROM call_slots WHERE slot_id = :slot")
_RENEW = text("UPDATE call_slots SET expires_at_ms = :expires WHERE slot_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_READ_WINDOW = text(
    "SELECT requests, tokens FROM rate_windows WHERE key_id = :key AND window_start = :start"
)


def _count_statement(rpm: bool, tpm: bool) -> TextClause:
    """Count one call in its minute, only if it fits the limits that are set."""
    checks = []
    if rpm:
        checks.append("rate_windows.requests < :rpm")
    if tpm:
        checks.append("rate_windows.tokens + excluded.tokens <= :tpm")
    return text(
        "INSERT INTO rate_windows (key_id, window_start, requests, tokens) "
        "VALUES (:key, :start, 1, :tokens) "
        "ON CONFLICT (key_id, window_start) DO UPDATE "
        "SET requests = rate_windows.requests + 1, tokens = rate_windows.tokens + excluded.tokens "
        "WHERE " + " AND ".join(checks)
    )


_COUNT = {(r, t): _count_statement(r, t) for r, t in ((True, False), (False, True), (True, True))}


@dataclass(frozen=True)
class Limits:
    """A key's limits; 0 is unlimited."""

    rpm: int = 0
    tpm: int = 0
    max_parallel: int = 0

    @property
    def unlimited(self) -> bool:
        return self.rpm <= 0 and self.tpm <= 0 and self.max_parallel <= 0


@dataclass(frozen=True)
class Refusal:
    """Why a call was not admitted, and when trying again can succeed (seconds)."""

    limit: Literal["rpm", "tpm", "parallel"]
    message: str
    retry_after: float


class _Refused(Exception):
    """Raised inside the admission transaction so that it rolls back."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal


def window_of(now: float) -> int:
    """The start (epoch seconds) of the fixed minute holding ``now``."""
    return math.floor(now / WINDOW_SECONDS) * WINDOW_SECONDS


class LimitStore:
    """The shared counters and slots, seen from one api instance (``owner``); blocking calls.

    A statement that stands alone runs in autocommit (no BEGIN/COMMIT round trips); a slot is
    taken in a transaction, with the minute's count when the key has one.
    """

    def __init__(self, engine: Engine, owner: str, lease: float = SLOT_LEASE_SECONDS) -> None:
        self.engine = engine
        self.owner = owner
        self.lease = lease
        self._postgres = engine.dialect.name == "postgresql"
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def take(self, key_id: str, limits: Limits, tokens: int, now: float) -> str | Refusal:
        """Admit one call of ``key_id``: its slot id ("" when it needs none), or a ``Refusal``."""
        counts = limits.rpm > 0 or limits.tpm > 0
        if not counts and limits.max_parallel <= 0:
            return ""
        try:
            if limits.max_parallel <= 0:
                with self._autocommit.connect() as conn:
                    self._count(conn, key_id, limits, max(tokens, 0), now)
                return ""
            with self.engine.begin() as conn:
                slot = self._take_slot(conn, key_id, limits.max_parallel, now)
                if counts:
                    self._count(conn, key_id, limits, max(tokens, 0), now)
                return slot
        except _Refused as refused:
            return refused.refusal

    def _take_slot(self, conn: Connection, key_id: str, limit: int, now: float) -> str:
        if self._postgres:
            conn.execute(_PG_LOCK_KEY, {"space": _PG_LOCK_SPACE, "key": key_id})
        slot = uuid.uuid4().hex
        params = {
            "slot": slot,
            "key": key_id,
            "new_key": key_id,  # one name per use: PostgreSQL types each use differently
            "owner": self.owner,
            "expires": _ms(now + self.lease),
            "now": _ms(now),
            "limit": limit,
        }
        if conn.execute(_TAKE_SLOT, params).rowcount != 1:
            message = f"rate limit: at most {limit} parallel calls for this key"
            raise _Refused(Refusal("parallel", message, PARALLEL_RETRY_SECONDS))
        return slot

    def _count(
        self, conn: Connection, key_id: str, limits: Limits, tokens: int, now: float
    ) -> None:
        start = window_of(now)
        statement = _COUNT[(limits.rpm > 0, limits.tpm > 0)]
        params = {"key": key_id, "start": start, "tokens": tokens}
        params |= {"rpm": limits.rpm, "tpm": limits.tpm}
        if conn.execute(statement, params).rowcount == 1:
            return
        requests, used = conn.execute(_READ_WINDOW, {"key": key_id, "start": start}).one()
        wait = start + WINDOW_SECONDS - now
        if limits.rpm > 0 and requests >= limits.rpm:
            message = f"rate limit: {limits.rpm} requests per minute for this key"
            raise _Refused(Refusal("rpm", message, wait))
        message = (
            f"rate limit: {limits.tpm} tokens per minute for this key ({used} used, {tokens} asked)"
        )
        raise _Refused(Refusal("tpm", message, wait))

    def give_back(self, slot_id: str) -> None:
        """End a call's slot (idempotent)."""
        with self._autocommit.connect() as conn:
            conn.execute(_GIVE_BACK, {"slot": slot_id})

    def renew(self, slot_ids: Collection[str], now: float) -> int:
        """Push the lease of these slots (the ones this instance holds) to ``now + lease``.

        By id, not by owner: a slot whose taking or giving back failed midway (the database
        may have done it) is not renewed, so it lapses with its lease instead of counting
        forever. One statement for up to ``RENEW_BATCH`` slots. Returns how many were renewed.
        """
        ids = list(slot_ids)
        renewed = 0
        with self._autocommit.connect() as conn:
            for first in range(0, len(ids), RENEW_BATCH):
                batch = ids[first : first + RENEW_BATCH]
                expires = _ms(now + self.lease)
                renewed += conn.execute(_RENEW, {"expires": expires, "ids": batch}).rowcount
        return renewed

    def give_back_all(self) -> None:
        """End every slot of this instance (a clean shutdown)."""
        with self._autocommit.connect() as conn:
            conn.execute(text("DELETE FROM call_slots WHERE owner = :owner"), {"owner": self.owner})

    def sweep(self, now: float) -> None:
        """Delete expired slots and minutes no instance counts in any more (any instance may)."""
        with self._autocommit.connect() as conn:
            conn.execute(
                text("DELETE FROM call_slots WHERE expires_at_ms <= :now"), {"now": _ms(now)}
            )
            # The previous minute stays: an instance whose clock lags a little still counts there.
            conn.execute(
                text("DELETE FROM rate_windows WHERE window_start < :start"),
                {"start": window_of(now) - WINDOW_SECONDS},
            )

    def in_flight(self, key_id: str, now: float) -> int:
        """Live slots of ``key_id`` on every instance."""
        with self.engine.connect() as conn:
            count = conn.execute(
                text(
                    "SELECT count(*) FROM call_slots WHERE key_id = :key AND expires_at_ms > :now"
                ),
                {"key": key_id, "now": _ms(now)},
            ).scalar_one()
            return int(count)

    def used(self, key_id: str, now: float) -> tuple[int, int]:
        """Requests and tokens ``key_id`` used in the minute of ``now``, on every instance."""
        with self.engine.connect() as conn:
            row = conn.execute(_READ_WINDOW, {"key": key_id, "start": window_of(now)}).first()
            return (int(row[0]), int(row[1])) if row else (0, 0)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
