"""how the customer is addressed; a put-right recorded as done

``customers.addressed_as``: the name a greeting uses ("Hello Arthur,"); empty, each language's
default from the full name. ``cases.put_right_done_at`` and ``put_right_done_by``: staff
confirmed that what the apology promised was done (``amends done``); the closing thank-you
waits for it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs: SQLite's batch mode would rebuild tables that others refer to.
    op.add_column("customers", sa.Column("addressed_as", sa.String(length=120), nullable=True))
    op.add_column("cases", sa.Column("put_right_done_at", sa.DateTime(timezone=True)))
    op.add_column("cases", sa.Column("put_right_done_by", sa.String(length=120), nullable=True))


def downgrade() -> None:
    op.drop_column("cases", "put_right_done_by")
    op.drop_column("cases", "put_right_done_at")
    op.drop_column("customers", "addressed_as")
