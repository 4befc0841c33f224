"""operator names: the person's name beside the user name, for the operator lists

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("operators", sa.Column("name", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("operators", "name")
