"""Which PostgreSQL role may do what to which table: the api's and the worker's, nothing more.

Why per table: the public api holds keys and answers strangers, so if it is ever subverted it
must not be able to drop tables or rewrite history; the worker never touches keys. Neither role
owns a table or may create one: the migration role (the tables' owner) applies these grants
after every upgrade (``python -m db upgrade --grant api=ROLE --grant worker=ROLE``), revoking
anything else first, so a change here reaches existing databases.

A new table needs an entry here; ``tests/db/test_migrations.py`` fails until it has one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from sqlalchemy import Connection, text

Privileges = Mapping[str, tuple[str, ...]]
READ: Final = ("SELECT",)
UPSERT: Final = ("SELECT", "INSERT", "UPDATE")
"""``INSERT ... ON CONFLICT DO UPDATE`` needs SELECT and UPDATE besides INSERT."""
REPLACE: Final = ("SELECT", "INSERT", "DELETE")

TABLE_PRIVILEGES: Final[Mapping[str, Privileges]] = MappingProxyType(
    {
        # Both check the schema revision at start.
        "alembic_version": {"api": READ, "worker": READ},
        # Created, changed and revoked through the admin api; read to authenticate every call.
        "virtual_keys": {"api": UPSERT, "worker": ()},
        # An upsert per settled call: by the api (it walks the chain and records each gateway
        # call) and by the worker (calls of agents written as workflows; silent callers'
        # calls); both read it (spend, runs; the calls a caller recorded).
        "ledger": {"api": UPSERT, "worker": UPSERT},
        # A call's tags are replaced as a set when its row is written again.
        "ledger_tags": {"api": REPLACE, "worker": REPLACE},
        # Recorded by the worker's alert activity (a merge: read, then insert or update);
        # listed by the admin api.
        "alerts": {"api": READ, "worker": UPSERT},
        # The api's own: answers kept for Idempotency-Key retries, claimed, finished, expired.
        "idempotent_requests": {"api": (*UPSERT, "DELETE"), "worker": ()},
        # The api instances' shared rate limits (db/limits.py): request and token windows,
        # and parallel-call slots they lease, renew, give back and expire.
        "rate_windows": {"api": (*UPSERT, "DELETE"), "worker": ()},
        "call_slots": {"api": (*UPSERT, "DELETE"), "worker": ()},
        # The journal (db/journal.py). Intents: written by the api before a call goes out and
        # deleted with its ledger row; the worker bills a dead caller's and deletes them.
        "calls_in_flight": {"api": (*UPSERT, "DELETE"), "worker": (*UPSERT, "DELETE")},
        # Opened by the api; started and closed by either (the worker's janitor and runs).
        "runs": {"api": UPSERT, "worker": UPSERT},
        # A keeper's word to its borrowers: written and read by the api instances.
        "nudges": {"api": (*UPSERT, "DELETE"), "worker": UPSERT},
        # Dashboard sessions signed out early: added at sign-out, read by every instance,
        # expired ones deleted.
        "ui_signed_out": {"api": REPLACE, "worker": ()},
    }
)
PROCESSES: Final = ("api", "worker")
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def apply_grants(conn: Connection, roles: Mapping[str, str]) -> None:
    """Give each process's role (``{"api": "runcap_api"}``) exactly its privileges."""
    for process, role in roles.items():
        if process not in PROCESSES:
            raise ValueError(f"unknown process {process!r}; expected one of {PROCESSES}")
        if not _ROLE_NAME.match(role):
            raise ValueError(f"role name {role!r} is not a plain lower-case identifier")
        # Identifiers cannot be bound parameters; the name was checked above.
        conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"))
        conn.execute(text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        for table, by_process in TABLE_PRIVILEGES.items():
            if privileges := by_process.get(process, ()):
                conn.execute(text(f"GRANT {', '.join(privileges)} ON TABLE {table} TO {role}"))
