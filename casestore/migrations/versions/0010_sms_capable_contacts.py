"""landlines: whether a contact can take SMS (and why not), and what a notice call says

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import casestore.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(
            sa.Column("sms_capable", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch.add_column(sa.Column("sms_capable_reason", sa.String(length=40), nullable=True))
        batch.add_column(
            sa.Column("sms_capable_at", casestore.models.UTCDateTime(timezone=True), nullable=True)
        )
    op.add_column("outbound_calls", sa.Column("message", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("outbound_calls", "message")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("sms_capable_at")
        batch.drop_column("sms_capable_reason")
        batch.drop_column("sms_capable")
