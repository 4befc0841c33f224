"""dead letters: contacts acknowledged to the provider that the database refused to store

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import casestore.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_at", casestore.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("provider_ref", sa.String(length=80), nullable=True),
        sa.Column("department", sa.String(length=32), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("resolved_at", casestore.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index(
        "ix_dead_letters_resolved_received",
        "dead_letters",
        ["resolved_at", "received_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_dead_letters_resolved_received", table_name="dead_letters")
    op.drop_table("dead_letters")
