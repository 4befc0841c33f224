"""limited numbers: a number that went over an abuse limit with no case to join

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import casestore.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "contacts",
        sa.Column("limit_hit_at", casestore.models.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column("contacts", sa.Column("limit_hit", sa.String(length=40), nullable=True))
    op.create_index(op.f("ix_contacts_limit_hit_at"), "contacts", ["limit_hit_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_contacts_limit_hit_at"), table_name="contacts")
    op.drop_column("contacts", "limit_hit")
    op.drop_column("contacts", "limit_hit_at")
