"""Once: quota indexes on ``image_jobs``. Now kept empty: the ``imagine`` plugin owns them.

See revision 0002: the plugin's first revision creates whichever of the table's indexes
a database lacks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing: see the module docstring."""


def downgrade() -> None:
    """Nothing."""
