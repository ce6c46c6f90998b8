"""Dashboard sessions signed out early, in the database every api process shares.

Why the database: a sign-out kept in one process's memory held on that process only; behind a
load balancer the same cookie still opened pages on every other instance. Why a cache: every
dashboard request checks its session, so each process reads the list at most once per ``ttl``
(1 s): a sign-out holds everywhere within that. The list stays small: only the admin can sign
out, and each sign-out deletes the rows whose sessions have expired anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from api.ui.session import SignedOutHere
from db.models import SignedOutSession

T = SignedOutSession.__table__  # type: ignore[attr-defined]


class SignedOutEverywhere:
    """``api.ui.session.SignedOut`` in the ``ui_signed_out`` table; blocking (the dashboard's
    session checks run in FastAPI's thread pool)."""

    def __init__(
        self, engine: Engine, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.clock = clock
        self._here = SignedOutHere()
        """This process's own sign-outs hold at once, whatever a read in flight returns."""
        self._sids: frozenset[str] = frozenset()
        self._read_at: float | None = None
        self._reading = threading.Lock()

    def add(self, sid: str, expires: int) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(delete(T).where(T.c.expires_at <= now))
        try:
            with self.engine.begin() as conn:
                until = datetime.fromtimestamp(expires, UTC)
                conn.execute(insert(T).values(sid=sid, expires_at=until))
        except IntegrityError:
            pass  # signed out already (two tabs)
        self._here.add(sid, expires)

    def __contains__(self, sid: object) -> bool:
        if sid in self._here:
            return True
        if self._stale():
            with self._reading:
                if self._stale():
                    self._read()
        return sid in self._sids

    def _stale(self) -> bool:
        return self._read_at is None or self.clock() - self._read_at >= self.ttl

    def _read(self) -> None:
        read_at = self.clock()
        with self.engine.begin() as conn:
            rows = conn.execute(select(T.c.sid).where(T.c.expires_at > datetime.now(UTC)))
            self._sids = frozenset(rows.scalars())
        self._read_at = read_at
