"""Documents and chunks in SQL: the repository of the plugin's ``kb_documents``/``kb_chunks``.

SQL is the source of truth of what a server's knowledge base holds; the vector store
mirrors the ``ready`` documents. A document is inserted ``pending`` with all its chunks
in one transaction, marked ``ready`` once its vectors are stored, and deleted with its
chunks in one transaction. It uses the engine the app injects (the ``database`` back
end); it never talks to the vector store and never knows about a platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import InputRejected
from plugins.knowledge.tables import kb_chunks, kb_documents
from storage.base import as_utc, translated
from storage.models import utcnow


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """One document of a server's knowledge base."""

    id: int
    server_pk: int
    source: str
    kind: str
    sha256: str
    status: str
    chunk_count: int
    chars: int
    added_by: int | None
    added_by_name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """One chunk's text and place (``id`` is the vector store's id: ``doc:position``)."""

    document_id: int
    position: int
    text: str
    heading: str
    page: int | None
    tokens: int

    @property
    def id(self) -> str:
        """The chunk's id in the vector store and the keyword index."""
        return chunk_id(self.document_id, self.position)


@dataclass(frozen=True, slots=True)
class NewDocument:
    """What ingestion inserts: the document's fields and its chunks."""

    server_pk: int
    source: str
    kind: str
    sha256: str
    chars: int
    added_by: int | None
    added_by_name: str
    chunks: Sequence[StoredChunk]  # document_id is filled in on insert


def chunk_id(document_id: int, position: int) -> str:
    """The id of a chunk in the vector store and the keyword index."""
    return f"{document_id}:{position}"


def parse_chunk_id(value: str) -> tuple[int, int] | None:
    """``(document_id, position)`` of a chunk id, or None when it is not one."""
    doc, _, position = value.partition(":")
    if not (doc.isdigit() and position.isdigit()):
        return None
    return int(doc), int(position)


class Library:
    """Reads and writes the knowledge base's documents and chunks."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Use ``engine`` (the ``database`` back end: ``Storage.engine``)."""
        self._engine = engine

    @translated
    async def insert_pending(self, new: NewDocument) -> StoredDocument:
        """Insert a ``pending`` document with its chunks, or refuse a duplicate.

        Raises:
            InputRejected: The server already has a document with the same text.
        """
        values = {
            "server_id": new.server_pk,
            "source": new.source,
            "kind": new.kind,
            "sha256": new.sha256,
            "status": "pending",
            "chunk_count": len(new.chunks),
            "chars": new.chars,
            "added_by": new.added_by,
            "added_by_name": new.added_by_name[:100],
            "created_at": utcnow(),
        }
        try:
            async with self._engine.begin() as conn:
                inserted = kb_documents.insert().values(values).returning(kb_documents.c.id)
                doc_id = int((await conn.execute(inserted)).scalar_one())
                rows = [_chunk_row(doc_id, chunk) for chunk in new.chunks]
                for start in range(0, len(rows), 500):
                    await conn.execute(kb_chunks.insert(), rows[start : start + 500])
        except IntegrityError:
            same = await self.by_hash(new.server_pk, new.sha256)
            name = f"“{same.source}”" if same else "another document"
            raise InputRejected(
                f"“{new.source}” is already in the knowledge base as {name}."
            ) from None
        return StoredDocument(
            id=doc_id,
            server_pk=new.server_pk,
            source=new.source,
            kind=new.kind,
            sha256=new.sha256,
            status="pending",
            chunk_count=len(new.chunks),
            chars=new.chars,
            added_by=new.added_by,
            added_by_name=str(values["added_by_name"]),
            created_at=values["created_at"],  # type: ignore[arg-type]
        )

    @translated
    async def mark_ready(self, doc_id: int) -> None:
        """The document's vectors are stored: it becomes searchable."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(kb_documents).where(kb_documents.c.id == doc_id).values(status="ready")
            )

    @translated
    async def delete(self, doc_ids: Sequence[int]) -> None:
        """Delete documents and their chunks (one transaction)."""
        if not doc_ids:
            return
        async with self._engine.begin() as conn:
            await conn.execute(delete(kb_chunks).where(kb_chunks.c.document_id.in_(doc_ids)))
            await conn.execute(delete(kb_documents).where(kb_documents.c.id.in_(doc_ids)))

    @translated
    async def documents(
        self, server_pk: int, *, status: str | None = "ready"
    ) -> list[StoredDocument]:
        """A server's documents (by default only ``ready`` ones), oldest first."""
        stmt = select(kb_documents).where(kb_documents.c.server_id == server_pk)
        if status is not None:
            stmt = stmt.where(kb_documents.c.status == status)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(kb_documents.c.id))).all()
        return [_document(row) for row in rows]

    @translated
    async def by_source(self, server_pk: int, source: str) -> list[StoredDocument]:
        """A server's ready documents named ``source`` (case-insensitive)."""
        stmt = select(kb_documents).where(
            kb_documents.c.server_id == server_pk,
            kb_documents.c.status == "ready",
            func.lower(kb_documents.c.source) == source.lower(),
        )
        async with self._engine.connect() as conn:
            return [_document(row) for row in (await conn.execute(stmt)).all()]

    @translated
    async def by_hash(self, server_pk: int, sha256: str) -> StoredDocument | None:
        """The server's document with this text hash (any status), or None."""
        stmt = select(kb_documents).where(
            kb_documents.c.server_id == server_pk, kb_documents.c.sha256 == sha256
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return _document(row) if row is not None else None

    @translated
    async def totals(self, server_pk: int) -> tuple[int, int]:
        """How many documents and chunks a server holds (any status)."""
        stmt = select(func.count(), func.coalesce(func.sum(kb_documents.c.chunk_count), 0)).where(
            kb_documents.c.server_id == server_pk
        )
        async with self._engine.connect() as conn:
            docs, chunks = (await conn.execute(stmt)).one()
        return int(docs), int(chunks)

    @translated
    async def pending(self) -> list[StoredDocument]:
        """Documents of every server left ``pending`` (a crashed or running ingestion)."""
        stmt = select(kb_documents).where(kb_documents.c.status == "pending")
        async with self._engine.connect() as conn:
            return [_document(row) for row in (await conn.execute(stmt)).all()]

    @translated
    async def servers(self) -> list[int]:
        """Every server that has documents."""
        stmt = select(kb_documents.c.server_id).distinct()
        async with self._engine.connect() as conn:
            return [int(row[0]) for row in (await conn.execute(stmt)).all()]

    @translated
    async def chunks(self, doc_ids: Sequence[int]) -> list[StoredChunk]:
        """Every chunk of these documents, in document and position order."""
        if not doc_ids:
            return []
        stmt = (
            select(kb_chunks)
            .where(kb_chunks.c.document_id.in_(doc_ids))
            .order_by(kb_chunks.c.document_id, kb_chunks.c.position)
        )
        async with self._engine.connect() as conn:
            return [_chunk(row) for row in (await conn.execute(stmt)).all()]

    @translated
    async def server_chunks(self, server_pk: int) -> list[StoredChunk]:
        """Every chunk of a server's ready documents (what the keyword index holds)."""
        stmt = (
            select(kb_chunks)
            .join(kb_documents, kb_documents.c.id == kb_chunks.c.document_id)
            .where(kb_documents.c.server_id == server_pk, kb_documents.c.status == "ready")
            .order_by(kb_chunks.c.document_id, kb_chunks.c.position)
        )
        async with self._engine.connect() as conn:
            return [_chunk(row) for row in (await conn.execute(stmt)).all()]

    @translated
    async def lookup(
        self, server_pk: int, ids: Sequence[str]
    ) -> dict[str, tuple[StoredChunk, StoredDocument]]:
        """The chunks with these ids that belong to the server's ready documents."""
        keys = [key for key in map(parse_chunk_id, ids) if key is not None]
        if not keys:
            return {}
        # Two plain lookups (documents, then chunks by primary key): a join lets SQLite
        # start from the documents and scan each one's chunks (18 ms at 100k chunks).
        grouped = _by_document(keys[:500])
        docs = select(kb_documents).where(
            kb_documents.c.server_id == server_pk,
            kb_documents.c.status == "ready",
            kb_documents.c.id.in_(list(grouped)),
        )
        async with self._engine.connect() as conn:
            owners = {doc.id: doc for doc in map(_document, (await conn.execute(docs)).all())}
            if not owners:
                return {}
            chunks = select(kb_chunks).where(
                or_(
                    *(
                        and_(kb_chunks.c.document_id == doc, kb_chunks.c.position.in_(positions))
                        for doc, positions in grouped.items()
                        if doc in owners
                    )
                )
            )
            rows = (await conn.execute(chunks)).all()
        return {c.id: (c, owners[c.document_id]) for c in map(_chunk, rows)}


def _by_document(keys: Sequence[tuple[int, int]]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for doc, position in keys:
        grouped.setdefault(doc, []).append(position)
    return grouped


def _chunk_row(doc_id: int, chunk: StoredChunk) -> dict[str, object]:
    return {
        "document_id": doc_id,
        "position": chunk.position,
        "text": chunk.text,
        "heading": chunk.heading[:300],
        "page": chunk.page,
        "tokens": chunk.tokens,
    }


def _document(row: Row[object]) -> StoredDocument:
    m = row._mapping
    return StoredDocument(
        id=int(m["id"]),
        server_pk=int(m["server_id"]),
        source=m["source"],
        kind=m["kind"],
        sha256=m["sha256"],
        status=m["status"],
        chunk_count=int(m["chunk_count"]),
        chars=int(m["chars"]),
        added_by=m["added_by"],
        added_by_name=m["added_by_name"],
        created_at=as_utc(m["created_at"]),
    )


def _chunk(row: Row[object]) -> StoredChunk:
    m = row._mapping
    return StoredChunk(
        document_id=int(m["document_id"]),
        position=int(m["position"]),
        text=m["text"],
        heading=m["heading"],
        page=m["page"],
        tokens=int(m["tokens"]),
    )
