"""fault in four kinds, win-back bar, offer approvals

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fault was a yes/no "our fault"; it is now ours, shared, customer or external.
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("fault", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE incidents SET fault = CASE WHEN our_fault THEN 'ours' ELSE 'customer' END"
    )
    with op.batch_alter_table("incidents") as batch:
        batch.alter_column("fault", existing_type=sa.String(length=32), nullable=False)
        batch.drop_column("our_fault")

    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("winback_barred", sa.String(length=20), nullable=True))

    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("wanted", sa.Float(), nullable=False),
        sa.Column("frontline_limit", sa.Float(), nullable=False),
        sa.Column("manager_limit", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("approver", sa.String(length=120), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_approvals_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint("case_id", name=op.f("uq_approvals_case_id")),
    )


def downgrade() -> None:
    op.drop_table("approvals")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("winback_barred")
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("our_fault", sa.Boolean(), nullable=True))
    op.execute("UPDATE incidents SET our_fault = (fault IN ('ours', 'shared', 'external'))")
    with op.batch_alter_table("incidents") as batch:
        batch.alter_column("our_fault", existing_type=sa.Boolean(), nullable=False)
        batch.drop_column("fault")
