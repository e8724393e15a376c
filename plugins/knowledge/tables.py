"""The ``knowledge`` plugin's own tables (its migrations: ``migrations/``).

``kb_documents``: one row per document in a server's knowledge base (source name, content
hash, who added it, how many chunks). ``kb_chunks``: every chunk's text and place, so the
vector store can be rebuilt (a new embedding model) and the keyword index built without
it. A document is ``pending`` while it is being ingested and ``ready`` once its vectors
are stored; a ``pending`` row found at start-up is a crashed ingestion and is removed
with its vectors. Rows belong to the core's servers (deleting a server deletes them).
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from storage import models
from storage.models import NAMING_CONVENTION, PK, Timestamp, utcnow

metadata = MetaData(naming_convention=NAMING_CONVENTION)
# The core's tables these refer to, copied in so the foreign keys resolve (the core's
# migrations own them; nothing here creates or changes them).
for _core in (models.servers, models.users):
    _core.to_metadata(metadata)

DOCUMENT_STATUSES = ("pending", "ready")
"""``pending``: being ingested (or left by a crash); ``ready``: searchable."""

kb_documents = Table(
    "kb_documents",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("server_id", PK, ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
    Column("source", String(200), nullable=False),  # the sanitised file name
    Column("kind", String(8), nullable=False),  # txt, md, html, pdf, docx
    Column("sha256", String(64), nullable=False),  # of the extracted text
    Column("status", String(8), nullable=False),
    Column("chunk_count", Integer, nullable=False, default=0),
    Column("chars", Integer, nullable=False, default=0),
    Column("added_by", PK, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("added_by_name", String(100), nullable=False, default=""),
    Column("created_at", Timestamp, nullable=False, default=utcnow),
    CheckConstraint(f"status IN {DOCUMENT_STATUSES!r}", name="status"),
    UniqueConstraint("server_id", "sha256", name="uq_kb_documents_server_id_sha256"),
    Index("ix_kb_documents_server_id_source", "server_id", "source"),
    Index("ix_kb_documents_status", "status"),
)

kb_chunks = Table(
    "kb_chunks",
    metadata,
    Column("document_id", PK, nullable=False),
    Column("position", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("heading", String(300), nullable=False, default=""),
    Column("page", Integer, nullable=True),
    Column("tokens", Integer, nullable=False),
    PrimaryKeyConstraint("document_id", "position", name="pk_kb_chunks"),
    ForeignKeyConstraint(
        ["document_id"],
        ["kb_documents.id"],
        name="fk_kb_chunks_document_id_kb_documents",
        ondelete="CASCADE",
    ),
)
