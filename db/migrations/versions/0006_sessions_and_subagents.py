"""Sessions and sub-agents are runs: a key says what makes a run (``run_by``), caps a sub-agent
at a share of its parent's remaining budget (``subagent_share_ppm``), and each run knows its
parent run (``runs.parent_run_id``), so spend rolls up a tree.

Existing keys keep making a run per task, and now also one per agent session (the default).

Created: 2026-12-07 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("virtual_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("run_by", sa.JSON(), nullable=False, server_default='["task", "session"]')
        )
        batch_op.add_column(sa.Column("subagent_share_ppm", sa.Integer(), nullable=True))
    with op.batch_alter_table("virtual_keys", schema=None) as batch_op:
        batch_op.alter_column("run_by", server_default=None)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_run_id", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_runs_parent_run_id"), ["parent_run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_parent_run_id"))
        batch_op.drop_column("parent_run_id")
    with op.batch_alter_table("virtual_keys", schema=None) as batch_op:
        batch_op.drop_column("subagent_share_ppm")
        batch_op.drop_column("run_by")
