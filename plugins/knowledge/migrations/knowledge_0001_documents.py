"""The knowledge base's documents and their chunks.

Revision ID: knowledge_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "knowledge_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types as they were at this revision (tables.py may move on).
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``kb_documents`` and ``kb_chunks``."""
    op.create_table(
        "kb_documents",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("server_id", PK, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("chars", sa.Integer(), nullable=False),
        sa.Column("added_by", PK, nullable=True),
        sa.Column("added_by_name", sa.String(100), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("status IN ('pending', 'ready')", name=op.f("ck_kb_documents_status")),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["servers.id"],
            name=op.f("fk_kb_documents_server_id_servers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["added_by"],
            ["users.id"],
            name=op.f("fk_kb_documents_added_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_documents")),
        sa.UniqueConstraint("server_id", "sha256", name=op.f("uq_kb_documents_server_id_sha256")),
    )
    op.create_index("ix_kb_documents_server_id_source", "kb_documents", ["server_id", "source"])
    op.create_index("ix_kb_documents_status", "kb_documents", ["status"])
    op.create_table(
        "kb_chunks",
        sa.Column("document_id", PK, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("heading", sa.String(300), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["kb_documents.id"],
            name=op.f("fk_kb_chunks_document_id_kb_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_id", "position", name=op.f("pk_kb_chunks")),
    )


def downgrade() -> None:
    """Drop both tables (the vectors in chromadb stay; ``atelier kb rebuild`` cannot help)."""
    op.drop_table("kb_chunks")
    op.drop_index("ix_kb_documents_status", table_name="kb_documents")
    op.drop_index("ix_kb_documents_server_id_source", table_name="kb_documents")
    op.drop_table("kb_documents")
