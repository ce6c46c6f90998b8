"""Alembic migrations of runcap's own tables (``python -m db upgrade``; see ``db.migrate``)."""
