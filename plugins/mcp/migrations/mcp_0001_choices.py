"""Each server's choices of MCP servers and their tools.

Revision ID: mcp_0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "mcp_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types as they were at this revision (tables.py may move on).
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``mcp_choices``."""
    op.create_table(
        "mcp_choices",
        sa.Column("server_id", PK, nullable=False),
        sa.Column("mcp_name", sa.String(24), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("denied_tools", sa.Text(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["servers.id"],
            name=op.f("fk_mcp_choices_server_id_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("server_id", "mcp_name", name=op.f("pk_mcp_choices")),
    )


def downgrade() -> None:
    """Drop ``mcp_choices``."""
    op.drop_table("mcp_choices")
