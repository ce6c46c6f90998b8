"""Keys may hold their runs at the cap (``hold_at_cap``): a run at its per-run cap pauses until a
person approves more budget, rather than refuse for good. Off for every existing key.

Created: 2026-12-07 14:19:01.744155
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("virtual_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("hold_at_cap", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("virtual_keys", schema=None) as batch_op:
        batch_op.alter_column("hold_at_cap", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("virtual_keys", schema=None) as batch_op:
        batch_op.drop_column("hold_at_cap")
