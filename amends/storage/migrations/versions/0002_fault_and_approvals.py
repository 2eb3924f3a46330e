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
    op.execute("UPDATE incidents SET fault = CASE WHEN our_fault THEN 'ours' ELSE 'customer' END")
    with op.batch_alter_table("incidents") as batch:
        batch.alter_column("fault", existing_type=sa.String(length=32), nullable=False)
        batch.drop_column("our_fault")
    # The incident as filed resumes its case: it must validate in the new shape too.
    _rewrite_payloads(_fault_from)

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
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_approvals_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint("case_id", name=op.f("uq_approvals_case_id")),
    )


_incidents = sa.table("incidents", sa.column("id", sa.Integer), sa.column("payload", sa.JSON))


def _fault_from(payload: dict) -> dict:
    payload = dict(payload)
    if "our_fault" in payload:
        payload["fault"] = "ours" if payload.pop("our_fault") else "customer"
    return payload


def _our_fault_from(payload: dict) -> dict:
    payload = dict(payload)
    if "fault" in payload:
        payload["our_fault"] = payload.pop("fault") != "customer"
    customer = dict(payload.get("customer") or {})
    for name in ("tenure_years", "referrals"):
        customer.pop(name, None)
    if customer:
        payload["customer"] = customer
    return payload


def _rewrite_payloads(change) -> None:  # type: ignore[no-untyped-def]
    connection = op.get_bind()
    for row in connection.execute(sa.select(_incidents.c.id, _incidents.c.payload)).all():
        if isinstance(row.payload, dict):
            connection.execute(
                _incidents.update()
                .where(_incidents.c.id == row.id)
                .values(payload=change(row.payload))
            )


def downgrade() -> None:
    op.drop_table("approvals")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("winback_barred")
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("our_fault", sa.Boolean(), nullable=True))
    op.execute("UPDATE incidents SET our_fault = (fault IN ('ours', 'shared', 'external'))")
    _rewrite_payloads(_our_fault_from)
    with op.batch_alter_table("incidents") as batch:
        batch.alter_column("our_fault", existing_type=sa.Boolean(), nullable=False)
        batch.drop_column("fault")
