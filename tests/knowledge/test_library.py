"""The knowledge base's tables on SQLite and PostgreSQL: the plugin's migration matches
its tables, a document goes in with its chunks in one transaction, a duplicate is
refused, and deleting a document takes its chunks with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core.errors import InputRejected
from core.events import Origin
from plugins.knowledge import tables
from plugins.knowledge.library import Library, NewDocument, StoredChunk, parse_chunk_id
from storage import Storage

MIGRATIONS = Path(tables.__file__).parent / "migrations"


async def open_storage(url: str) -> Storage:
    """Storage with the core's and the knowledge plugin's migrations applied."""
    storage = await Storage.open(url)
    await storage.upgrade_plugin("knowledge", MIGRATIONS, tables.metadata)
    return storage


def _new(server_pk: int, source: str, sha: str, texts: list[str]) -> NewDocument:
    chunks = [StoredChunk(0, i, text, "Intro", None, 5) for i, text in enumerate(texts)]
    return NewDocument(server_pk, source, "md", sha, 100, None, "ann", chunks)


async def test_the_migration_creates_exactly_the_declared_tables(database_url: str) -> None:
    storage = await open_storage(database_url)
    try:
        async with storage.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), tables.metadata)
            )
    finally:
        await storage.close()
    ours = [d for d in diff if "kb_" in repr(d)]
    assert ours == []


async def test_a_document_and_its_chunks_go_in_together_and_out_together(
    database_url: str, make_origin: Callable[..., Origin]
) -> None:
    storage = await open_storage(database_url)
    try:
        ids = await storage.identify(make_origin())
        library = Library(storage.engine)
        doc = await library.insert_pending(_new(ids.server_pk, "a.md", "a" * 64, ["x", "y"]))
        assert doc.status == "pending" and doc.chunk_count == 2
        assert await library.documents(ids.server_pk) == []  # not searchable yet
        await library.mark_ready(doc.id)
        [ready] = await library.documents(ids.server_pk)
        assert (ready.source, ready.status, ready.added_by_name) == ("a.md", "ready", "ann")
        found = await library.lookup(ids.server_pk, [f"{doc.id}:1", "junk", f"{doc.id}:9"])
        assert [chunk.text for chunk, _ in found.values()] == ["y"]
        assert await library.lookup(ids.server_pk + 1, [f"{doc.id}:1"]) == {}
        with pytest.raises(InputRejected, match=r"already in the knowledge base as “a\.md”"):
            await library.insert_pending(_new(ids.server_pk, "b.md", "a" * 64, ["z"]))
        assert await library.totals(ids.server_pk) == (1, 2)
        await library.delete([doc.id])
        assert await library.totals(ids.server_pk) == (0, 0)
        assert await library.chunks([doc.id]) == []
    finally:
        await storage.close()


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("12:3", (12, 3)), ("12", None), (":3", None), ("a:b", None), ("1:-2", None), ("", None)],
)
def test_chunk_ids_parse_strictly(value: str, parsed: tuple[int, int] | None) -> None:
    assert parse_chunk_id(value) == parsed
