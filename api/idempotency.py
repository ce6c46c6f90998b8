"""``Idempotency-Key``: one request, one call, one charge, from any api instance, after restarts.

The first request with a key claims it (a ``pending`` row); its answer is stored when it ends.
A retry, here or on another instance, gets the stored answer, or waits for the first to end.
The same key with a different request is refused (409): never another request's answer.

What is stored: every outcome that spent money (an answer, or a call cut off after the provider
may have worked). An outcome that spent nothing (refused, or every target failed) is forgotten,
so a retry may try again. A claim whose owner died before it reserved anything is taken over
once it is older than ``stale_after`` and neither the ledger nor the journal of calls in
flight has it (a call that may have gone out is billed by its run, never run twice).

Nothing here grows without bound: each api instance deletes answers older than 24 h every few
minutes (``purging``, one indexed DELETE), and a retry waits for the first request at most
``within`` seconds, polling less often as it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session

from db.journal_models import CallInFlight
from db.models import IdempotentRequest, LedgerEntry, utcnow

log = logging.getLogger(__name__)
KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 200
R = IdempotentRequest.__table__  # type: ignore[attr-defined]
L = LedgerEntry.__table__  # type: ignore[attr-defined]
INTENTS = CallInFlight.__table__  # type: ignore[attr-defined]


@dataclass
class StoredAnswer:
    status_code: int
    content_type: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Claim:
    """``ours``: run the call. ``stored``: answer with it. ``pending``: another request runs it.
    ``mismatch``: the key was used for a different request."""

    kind: Literal["ours", "stored", "pending", "mismatch"]
    call_id: str
    answer: StoredAnswer | None = None
    ledger_status: str = ""
    """For ``pending``: the call's ledger status once it has a row."""


def call_id_for(key_id: str, idem: str) -> str:
    """The call id of an idempotent request: the same for every retry with this key."""
    return "idem-" + _digest(f"{key_id}\x00{idem}")[:40]


def request_hash(path: str, raw: bytes) -> str:
    return _digest(path + "\x00", raw)


def _digest(text: str, raw: bytes = b"") -> str:
    return hashlib.sha256(text.encode() + raw).hexdigest()


class IdempotencyStore:
    """The ``idempotent_requests`` table; every method blocks (run them in a thread)."""

    def __init__(self, engine: Engine, stale_after: timedelta) -> None:
        self.engine = engine
        self.stale_after = stale_after

    def claim(self, key_id: str, idem: str, req_hash: str, owner: str) -> Claim:
        """Claim the key for this request, or say what already holds it."""
        idem_hash = _digest(idem)
        call_id = call_id_for(key_id, idem)
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                delete(R).where(
                    R.c.key_id == key_id,
                    R.c.idem_hash == idem_hash,
                    R.c.created_at < now - KEEP_FOR,
                )
            )
        try:
            with Session(self.engine) as session:
                session.add(
                    IdempotentRequest(
                        key_id=key_id,
                        idem_hash=idem_hash,
                        request_hash=req_hash,
                        call_id=call_id,
                        owner=owner,
                        created_at=now,
                    )
                )
                session.commit()
            return Claim("ours", call_id)
        except IntegrityError:
            pass
        return self._existing(key_id, idem_hash, req_hash, call_id, owner)

    def _existing(
        self, key_id: str, idem_hash: str, req_hash: str, call_id: str, owner: str
    ) -> Claim:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(R).where(R.c.key_id == key_id, R.c.idem_hash == idem_hash)
            ).first()
            if row is None:
                return Claim("pending", call_id)  # forgotten meanwhile: the caller claims again
            if row.request_hash != req_hash:
                return Claim("mismatch", call_id)
            if row.state == "done":
                answer = StoredAnswer(
                    row.status_code, row.content_type, bytes(row.body), dict(row.headers or {})
                )
                return Claim("stored", call_id, answer)
            ledger = conn.execute(select(L.c.status).where(L.c.call_id == call_id)).scalar()
            created = row.created_at
            if created.tzinfo is None:  # SQLite gives naive UTC back
                created = created.replace(tzinfo=utcnow().tzinfo)
            in_flight = conn.execute(
                select(INTENTS.c.call_id).where(INTENTS.c.call_id == call_id)
            ).first()
            if ledger is None and in_flight is None and utcnow() - created > self.stale_after:
                # Its owner died before its call could go out (no intent, no ledger row; a call
                # that may have gone out keeps its intent until its run bills it): take it over.
                taken = conn.execute(
                    update(R)
                    .where(R.c.key_id == key_id, R.c.idem_hash == idem_hash, R.c.owner == row.owner)
                    .values(owner=owner, created_at=utcnow())
                )
                if taken.rowcount == 1:
                    return Claim("ours", call_id)
            return Claim("pending", call_id, ledger_status=str(ledger or ""))

    def complete(self, key_id: str, idem: str, answer: StoredAnswer) -> None:
        """Store the answer of a claimed request."""
        with self.engine.begin() as conn:
            conn.execute(
                update(R)
                .where(R.c.key_id == key_id, R.c.idem_hash == _digest(idem))
                .values(
                    state="done",
                    status_code=answer.status_code,
                    content_type=answer.content_type,
                    body=answer.body,
                    headers=answer.headers,
                )
            )

    def forget(self, key_id: str, idem: str) -> None:
        """Drop a claim whose request spent nothing, so a retry may run."""
        with self.engine.begin() as conn:
            conn.execute(delete(R).where(R.c.key_id == key_id, R.c.idem_hash == _digest(idem)))

    def purge(self) -> int:
        """Delete answers older than 24 h; returns how many."""
        with self.engine.begin() as conn:
            done = conn.execute(delete(R).where(R.c.created_at < utcnow() - KEEP_FOR))
            return int(done.rowcount or 0)


async def wait_for_outcome(
    store: IdempotencyStore,
    key_id: str,
    idem: str,
    req_hash: str,
    owner: str,
    *,
    within: float,
    every: float = 0.25,
    at_most_every: float = 2.0,
) -> Claim:
    """Poll until the key's first request ends (or is taken over, or forgotten), for at most
    ``within`` seconds; the polls grow apart from ``every`` to ``at_most_every``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        claim = await asyncio.to_thread(store.claim, key_id, idem, req_hash, owner)
        if claim.kind != "pending" or claim.ledger_status in ("unknown", "cancelled"):
            return claim
        left = deadline - loop.time()
        if left <= 0:
            return claim
        await asyncio.sleep(min(every, left))
        every = min(every * 1.5, at_most_every)


@contextlib.asynccontextmanager
async def purging(store: IdempotencyStore, *, every: float) -> AsyncIterator[None]:
    """Purge answers older than 24 h now and every ``every`` seconds while the block runs."""

    async def purge_forever() -> None:
        while True:
            try:
                if purged := await asyncio.to_thread(store.purge):
                    log.info("purged %d idempotent answers older than 24 h", purged)
            except SQLAlchemyError:
                log.warning("could not purge old idempotent answers", exc_info=True)
            await asyncio.sleep(every)

    task = asyncio.create_task(purge_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
