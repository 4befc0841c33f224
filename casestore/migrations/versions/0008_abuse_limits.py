"""abuse limits: per-number counters on contacts, and the cases that hit a limit

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import casestore.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "contacts",
        sa.Column("inbound_window", casestore.models.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "contacts",
        sa.Column("inbound_count", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "contacts",
        sa.Column("case_window", casestore.models.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "contacts",
        sa.Column("case_count", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "cases",
        sa.Column("limit_hit_at", casestore.models.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("cases", "limit_hit_at")
    op.drop_column("contacts", "case_count")
    op.drop_column("contacts", "case_window")
    op.drop_column("contacts", "inbound_count")
    op.drop_column("contacts", "inbound_window")
