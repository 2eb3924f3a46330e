"""customers: preferred channel, do-not-contact, latest activity

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("preferred_channel", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("do_not_contact", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("last_purchase_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("last_contact_on", sa.Date(), nullable=True))
        batch.add_column(
            sa.Column("unanswered_calls", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        for column in (
            "unanswered_calls",
            "last_contact_on",
            "last_purchase_on",
            "do_not_contact",
            "preferred_channel",
        ):
            batch.drop_column(column)
