"""Revocations reach every instance's key cache: two caches on one database stand for two api
instances, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from api import keys
from api.auth import KeyCache, KeyPolicy
from api.errors import AuthError
from api.revocations import RevocationWatch
from db.models import VirtualKeyCreate
from tests.polling import eventually


def new_key(engine: Engine) -> tuple[str, str]:
    """A fresh key's (id, secret)."""
    with Session(engine) as session:
        body = VirtualKeyCreate(name="agent", budget_usd=Decimal(1))
        created = keys.create(session, body)
    return created.id, created.key


def revoke(engine: Engine, cache: KeyCache, key_id: str) -> None:
    with Session(engine) as session:
        keys.revoke(session, cache, key_id)


async def test_a_revoke_through_one_instance_reaches_the_other_on_its_next_poll(
    engine: Engine,
) -> None:
    """Instance b caches a key for a minute; a revoke through instance a is refused by b after
    b's next poll, and the poll drops each revoked key once."""
    a, b = KeyCache(engine, ttl=60), KeyCache(engine, ttl=60)
    key_id, secret = new_key(engine)
    other_id, other = new_key(engine)
    watch = RevocationWatch(engine, b)
    assert await watch.poll() == []
    assert (await b.lookup(secret)).id == key_id
    revoke(engine, a, key_id)
    assert (await b.lookup(secret)).id == key_id  # cached: b has not looked yet
    assert await watch.poll() == [key_id]
    with pytest.raises(AuthError):
        await b.lookup(secret)
    assert await watch.poll() == []
    assert (await b.lookup(other)).id == other_id


async def test_a_load_that_overlaps_a_revocation_is_not_cached(engine: Engine) -> None:
    """A key read as active just before another instance's revoke, and dropped while that read
    was in flight, is served to that one request but not kept for the next."""
    key_id, secret = new_key(engine)

    class Overlapping(KeyCache):
        def load(self, key_hash: str) -> KeyPolicy | None:
            policy = super().load(key_hash)
            revoke(engine, KeyCache(engine), key_id)
            self.invalidate(key_id)  # the revocation watch polls while the read is in flight
            return policy

    cache = Overlapping(engine, ttl=60)
    assert (await cache.lookup(secret)).id == key_id
    with pytest.raises(AuthError):
        await cache.lookup(secret)  # a cached entry would have answered without a read


async def test_the_watch_polls_in_the_background(engine: Engine) -> None:
    """Inside its context the watch polls by itself: a cached key revoked elsewhere is refused
    without anyone calling ``poll``."""
    a, b = KeyCache(engine, ttl=60), KeyCache(engine, ttl=60)
    key_id, secret = new_key(engine)
    async with RevocationWatch(engine, b, every=0.05):
        await b.lookup(secret)
        revoke(engine, a, key_id)

        async def refused() -> bool:
            try:
                await b.lookup(secret)
            except AuthError:
                return True
            return False

        assert await eventually(refused, within=10)
