"""Every key is bounded: a total cap (``budget_total_micros``) beside its day and month caps, and
at most ``max_open_runs`` runs open at once.

A key that had only a per-run budget had no bound at all (each new task tag opened a run with a
fresh budget). It gets a month cap of 30 runs' worth: its users keep working, and its spend is
bounded from now on. The README says so; raise it with ``PATCH /admin/keys/{id}``.

Created: 2026-12-07 11:48:06.622523
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
RUNS_PER_MONTH = 30


def upgrade() -> None:
    with op.batch_alter_table("virtual_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_open_runs", sa.Integer(), nullable=False, server_default="100")
        )
        batch_op.add_column(sa.Column("budget_total_micros", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("virtual_keys", schema=None) as batch_op:
        batch_op.alter_column("max_open_runs", server_default=None)
    op.execute(
        f"UPDATE virtual_keys SET budget_per_month_micros = {RUNS_PER_MONTH} * "
        "budget_per_run_micros WHERE budget_per_day_micros IS NULL AND "
        "budget_per_month_micros IS NULL AND budget_per_run_micros IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("virtual_keys", schema=None) as batch_op:
        batch_op.drop_column("budget_total_micros")
        batch_op.drop_column("max_open_runs")
