"""an index on customers' lower(ref)

An import looks up, a batch at a time, which of its refs differ only in case from a customer's
on file (``lower(ref)``); without an index each lookup reads every customer, so a large import
slowed as it went.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_customers_lower_ref", "customers", [sa.func.lower(sa.column("ref"))])


def downgrade() -> None:
    op.drop_index("ix_customers_lower_ref", table_name="customers")
