"""installation identifier in Message-IDs; deliveries the server never confirmed

Every Message-ID now carries this database's own identifier, made here once, so that two
installations (staging and production, a rebuilt database, SQLite moved to PostgreSQL) never
send the same one. Messages that may have reached a server keep the id they went out with (a
resend, a reply's thread and ``forget`` match it); those never tried get the new form.
``messages.unconfirmed`` counts connections lost after a message's data went out.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    installation = op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
    )
    identifier = secrets.token_hex(8)
    op.bulk_insert(
        installation, [{"id": 1, "identifier": identifier, "created_at": datetime.now(UTC)}]
    )
    # A plain ADD COLUMN: SQLite's batch mode would rebuild messages, which others refer to.
    op.add_column(
        "messages", sa.Column("unconfirmed", sa.Integer(), nullable=False, server_default="0")
    )
    # Only messages no sender ever took (queued, no attempt): nothing went out with their id.
    connection = op.get_bind()
    never_tried = connection.execute(
        sa.text(
            "SELECT id, key, message_id FROM messages "
            "WHERE status = 'queued' AND attempts = 0 AND message_id IS NOT NULL"
        )
    ).all()
    for id_, key, old in never_tried:
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        domain = old.rpartition("@")[2].rstrip(">")
        connection.execute(
            sa.text("UPDATE messages SET message_id = :new WHERE id = :id"),
            {"new": f"<{digest}.{identifier}@{domain}>", "id": id_},
        )


def downgrade() -> None:
    op.drop_column("messages", "unconfirmed")
    op.drop_table("installation")
