"""nightly re-engagement: messages and staff actions per customer, check-in outcomes, suppressions

A win-back offer goes to a customer who has no open case, so messages and staff actions now
belong to a customer and, where there is one, a case. Check-ins keep their outcome, the
customer's feedback and how often they were missed. Suppressions hold opt-outs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNED = ("messages", "staff_actions")


def upgrade() -> None:
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
        op.execute(
            f"UPDATE {table} SET customer_id = "
            f"(SELECT cases.customer_id FROM cases WHERE cases.id = {table}.case_id)"
        )
        with op.batch_alter_table(table) as batch:
            batch.alter_column("customer_id", existing_type=sa.Integer(), nullable=False)
            batch.alter_column("case_id", existing_type=sa.Integer(), nullable=True)
            batch.create_foreign_key(
                f"fk_{table}_customer_id_customers", "customers", ["customer_id"], ["id"]
            )
            batch.create_index(f"ix_{table}_customer_id", ["customer_id"])
    with op.batch_alter_table("messages") as batch:
        batch.create_index("ix_messages_kind_created_at", ["kind", "created_at"])
    with op.batch_alter_table("checkins") as batch:
        batch.add_column(sa.Column("misses", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("feedback", sa.Text(), nullable=True))
        batch.add_column(sa.Column("recorded_by", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_checkins_status_starts_at", ["status", "starts_at"])
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("address", "scope", name=op.f("uq_suppressions_address_scope")),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    with op.batch_alter_table("checkins") as batch:
        batch.drop_index("ix_checkins_status_starts_at")
        for column in ("outcome_at", "recorded_by", "feedback", "misses"):
            batch.drop_column(column)
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_kind_created_at")
    # What belongs to no case (win-back offers, and the staff work about them) cannot stay.
    op.execute(
        "DELETE FROM staff_actions WHERE case_id IS NULL OR message_id IN "
        "(SELECT id FROM messages WHERE case_id IS NULL)"
    )
    op.execute("DELETE FROM messages WHERE case_id IS NULL")
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_customer_id")
            batch.drop_constraint(f"fk_{table}_customer_id_customers", type_="foreignkey")
            batch.alter_column("case_id", existing_type=sa.Integer(), nullable=False)
            batch.drop_column("customer_id")
