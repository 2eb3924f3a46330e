"""listening: where a public post was read, whether it is a complaint, addressed to us, a duplicate

The monitor-mentions flow keeps every post it reads (for the reports) with its source and id
there, its sentiment, whether it is a complaint and whether it was written to the business or
only about it; a repost or a repeat points at the post it repeats; a post is linked to the
customer whose handle wrote it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mentions") as batch:
        batch.add_column(sa.Column("source", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("external_id", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("in_reply_to", sa.String(length=200), nullable=True))
        batch.add_column(
            sa.Column("addressed", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("complaint", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("sentiment", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("duplicate_of", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("repost", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("answer_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.create_unique_constraint(
            "uq_mentions_platform_external_id", ["platform", "external_id"]
        )
        batch.create_foreign_key(
            "fk_mentions_duplicate_of_mentions", "mentions", ["duplicate_of"], ["id"]
        )
        batch.create_foreign_key(
            "fk_mentions_customer_id_customers", "customers", ["customer_id"], ["id"]
        )
        batch.create_index("ix_mentions_customer_id", ["customer_id"])
        batch.create_index("ix_mentions_complaint_case_id", ["complaint", "case_id"])
    # Posts recorded before: what the monitor stage answered were complaints.
    op.execute("UPDATE mentions SET complaint = (case_id IS NOT NULL)")


def downgrade() -> None:
    with op.batch_alter_table("mentions") as batch:
        batch.drop_index("ix_mentions_complaint_case_id")
        batch.drop_index("ix_mentions_customer_id")
        batch.drop_constraint("fk_mentions_customer_id_customers", type_="foreignkey")
        batch.drop_constraint("fk_mentions_duplicate_of_mentions", type_="foreignkey")
        batch.drop_constraint("uq_mentions_platform_external_id", type_="unique")
        for column in (
            "answer_attempts", "recorded_at", "customer_id", "repost", "duplicate_of", "sentiment", "complaint", "addressed",
            "in_reply_to", "external_id", "source",
        ):  # fmt: skip
            batch.drop_column(column)
