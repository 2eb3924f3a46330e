"""an index on incidents' received_at

A report selects its period's complaints by when they were received, and every incident run
makes the last 30 days' figures for its views; without an index each of those reads every
incident on file, so each run slowed as the business's history grew.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_incidents_received_at", "incidents", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_incidents_received_at", table_name="incidents")
