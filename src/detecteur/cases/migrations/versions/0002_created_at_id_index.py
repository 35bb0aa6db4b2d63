"""cases: (created_at, id) index for date-range listings

A listing filtered by a date range pages in (created_at, id) order (keyset pagination, `store._page_ids`); this
index lets the database walk it backwards from the range's end and stop at the page size. It replaces the index on
created_at alone, which it covers as its leading column.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cases_created_at_id", "cases", ["created_at", "id"])
    op.drop_index("ix_cases_created_at", table_name="cases")


def downgrade() -> None:
    op.create_index("ix_cases_created_at", "cases", ["created_at"])
    op.drop_index("ix_cases_created_at_id", table_name="cases")
