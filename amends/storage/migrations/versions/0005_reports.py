"""reports: the answers of customers who left to the exit questions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exit_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("why", sa.Text(), nullable=True),
        sa.Column("went_to", sa.Text(), nullable=True),
        sa.Column("second_chance", sa.Text(), nullable=True),
        sa.Column("stay", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.String(length=120), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_exit_answers_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_exit_answers_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exit_answers")),
    )
    op.create_index(op.f("ix_exit_answers_customer_id"), "exit_answers", ["customer_id"])
    op.create_index(op.f("ix_exit_answers_recorded_at"), "exit_answers", ["recorded_at"])


def downgrade() -> None:
    op.drop_table("exit_answers")
