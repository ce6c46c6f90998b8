"""Test databases at the migrations' head, as ``python -m db upgrade`` leaves them.

Why a template: upgrading takes a few tens of milliseconds and many tests want a fresh SQLite
file, so the first one is migrated once per session and each test gets a copy of it.
"""

from __future__ import annotations

import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine

from db.engine import make_engine
from db.migrate import upgrade


@lru_cache(maxsize=1)
def _template() -> Path:
    path = Path(tempfile.mkdtemp(prefix="runcap-template-")) / "head.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()  # the last connection's close folds the WAL into the file
    return path


def sqlite_at_head(path: Path) -> Engine:
    """A new SQLite database at ``path`` with runcap's schema at head."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template(), path)
    return make_engine(f"sqlite:///{path}")


def migrated(url: str) -> Engine:
    """An engine on ``url`` after upgrading its schema to head (PostgreSQL or SQLite)."""
    engine = make_engine(url)
    upgrade(engine)
    return engine
