"""Once: image jobs. Now kept empty: the ``imagine`` plugin owns ``image_jobs``.

This revision created ``image_jobs`` until the plugin took its table over (its own
migrations, ``plugins/imagine/migrations``, version table ``alembic_version_imagine``).
It stays, empty, so that databases stamped 0002 or 0003 keep a valid history; their
table and rows are adopted by the plugin's first revision.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing: see the module docstring."""


def downgrade() -> None:
    """Nothing: the plugin's own migrations drop its table."""
