"""``python -m db``: upgrade the schema (the one-shot before the worker and the api), or write
the next revision.

    python -m db upgrade [--grant api=ROLE --grant worker=ROLE]
    python -m db current
    python -m db revision -m "add the alerts table"

The database comes from the same settings as every process (``RUNCAP_DATABASE_URL``,
``RUNCAP_DATABASE_PASSWORD`` or its secret file).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from db.engine import engine_from
from db.migrate import SchemaError, current, head, new_revision, upgrade
from settings import RuncapSettings, SettingsError


def _grant(value: str) -> tuple[str, str]:
    process, sep, role = value.partition("=")
    if not sep or not process or not role:
        raise argparse.ArgumentTypeError(f"expected PROCESS=ROLE, got {value!r}")
    return process, role


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit 0 on success, 1 with a one-line reason otherwise."""
    parser = argparse.ArgumentParser(prog="python -m db")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("upgrade", help="bring the schema to head (idempotent)")
    up.add_argument(
        "--grant",
        type=_grant,
        action="append",
        default=[],
        metavar="PROCESS=ROLE",
        help="give a process's PostgreSQL role its privileges (db/grants.py)",
    )
    commands.add_parser("current", help="print the database's revision and this code's head")
    rev = commands.add_parser("revision", help="write the next revision from the models")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "revision":
            print(f"wrote {new_revision(args.message)}; review it before committing")
            return 0
        engine = engine_from(RuncapSettings.load())
        try:
            if args.command == "upgrade":
                upgrade(engine, dict(args.grant))
                print(f"database schema at {head()}", flush=True)
            else:
                print(f"database {current(engine) or '(empty)'}; code needs {head()}")
        finally:
            engine.dispose()
    except (SchemaError, SettingsError, ValueError) as error:
        print(f"runcap migrate: {error}", file=sys.stderr)
        return 1
    except SQLAlchemyError as error:
        # The driver's message names the host and the problem; the URL's password is masked.
        print(f"runcap migrate: database error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
