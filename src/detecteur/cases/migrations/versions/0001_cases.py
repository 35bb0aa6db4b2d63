"""cases and case_images

Revision ID: 0001
Revises:
Create Date: 2026-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("fake_probability", sa.Float(), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("api_key_name", sa.String(64), nullable=True),
        sa.Column("previous_case_id", BigId, nullable=True),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_cases_created_at", "cases", ["created_at"])
    op.create_index("ix_cases_verdict_id", "cases", ["verdict", "id"])
    op.create_index("ix_cases_decision_id", "cases", ["decision", "id"])
    op.create_index("ix_cases_model_version_id", "cases", ["model_version", "id"])
    op.create_index("ix_cases_sha256_id", "cases", ["sha256", "id"])
    op.create_table(
        "case_images",
        sa.Column("case_id", BigId, sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_case_images_expires_at", "case_images", ["expires_at"])


def downgrade() -> None:
    op.drop_table("case_images")
    op.drop_table("cases")
