"""past complaints imported as history

``cases.history`` marks a case imported from an export of past complaints (``amends import
incidents`` with a map's ``history``): it sends nothing and the report counts no breach of its.
``cases.first_response_at`` keeps when the business first answered such a complaint, where no
message of amends' says so.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs: SQLite's batch mode would rebuild cases, which others refer to.
    op.add_column(
        "cases", sa.Column("history", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("cases", sa.Column("first_response_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("first_response_at")
        batch.drop_column("history")
