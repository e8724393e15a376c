"""Ingestion is all or nothing, and a crash in the middle is repaired: SQL and the
vector store always end up agreeing."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import timedelta

import pytest

from bot.app import App
from core.errors import ModelError
from plugins.knowledge.library import NewDocument, StoredChunk
from plugins.knowledge.service import KnowledgeBase
from rag.embedding import Embedder
from rag.store import ChunkRecord
from tests.knowledge.conftest import DOCS, base
from tests.knowledge.test_kb_stories import server_pk, totals

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.model]


class BreaksAfter:
    """An embedder that works ``calls`` times, then fails like a crashed worker."""

    def __init__(self, real: Embedder, calls: int) -> None:
        self.real, self.calls = real, calls

    @property
    def dimensions(self) -> int:
        return self.real.dimensions

    @property
    def model_name(self) -> str:
        return self.real.model_name

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self.calls <= 0:
            raise ModelError("the embedding worker crashed twice")
        self.calls -= 1
        return await self.real.embed(texts)


def breaking(app: App, calls: int) -> KnowledgeBase:
    """The app's knowledge base, but with an embedder that fails after ``calls`` calls."""
    kb = base(app)
    return KnowledgeBase(
        kb.settings,
        kb.library,
        kb.store,
        BreaksAfter(kb.embedder, calls),
        count=kb.count,
        extractor=kb.extractor,
    )


async def test_a_failure_while_embedding_leaves_nothing_in_sql_or_the_store(app: App) -> None:
    pk = await server_pk(app, "atomic")
    # A long document needs several embedding rounds: the second one fails.
    long_text = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum dolor " * 40 for i in range(400))
    with pytest.raises(ModelError):
        await breaking(app, 1).add(
            pk, "long.txt", long_text.encode(), added_by=None, added_by_name="x"
        )
    assert await totals(app, "atomic") == (0, 0, 0)
    added = await base(app).add(
        pk, "long.txt", long_text.encode(), added_by=None, added_by_name="x"
    )
    assert (await totals(app, "atomic"))[1:] == (added.document.chunk_count,) * 2


def _unit(seed: int, size: int) -> list[float]:
    rng = random.Random(seed)
    vector = [rng.gauss(0, 1) for _ in range(size)]
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


async def test_start_up_repair_removes_a_crashed_ingestion_and_stray_vectors(app: App) -> None:
    kb = base(app)
    pk = await server_pk(app, "crash")
    chunk = StoredChunk(0, 0, "half-ingested text", "", None, 3)
    pending = await kb.library.insert_pending(
        NewDocument(pk, "half.txt", "txt", "0" * 64, 18, None, "x", [chunk])
    )
    size = len((await kb.embedder.embed(["probe"]))[0])
    await kb.store.add(
        pk,
        [ChunkRecord(f"{pending.id}:0", chunk.text, _unit(1, size), {"document_id": pending.id})],
    )
    await kb.store.add(
        pk, [ChunkRecord("999999:0", "stray", _unit(2, size), {"document_id": 999999})]
    )
    young = await kb.repair()  # another process may still be ingesting a young one
    assert young.pending_removed == 0 and young.orphan_documents == 1
    report = await kb.repair(grace=timedelta(0))
    assert report.pending_removed == 1
    assert await totals(app, "crash") == (0, 0, 0)


async def test_repair_re_embeds_a_ready_document_whose_vectors_were_lost(app: App) -> None:
    kb = base(app)
    pk = await server_pk(app, "lost")
    added = await kb.add(
        pk, "faq.md", (DOCS / "faq.md").read_bytes(), added_by=None, added_by_name="x"
    )
    await kb.store.delete_where(pk, "document_id", added.document.id)
    report = await kb.repair()
    assert report.documents_reembedded == 1
    docs, chunks, vectors = await totals(app, "lost")
    assert docs == 1 and chunks == vectors == added.document.chunk_count


async def test_a_reader_that_runs_past_its_limit_is_stopped_and_the_next_file_works(
    app: App,
) -> None:
    from core.errors import InputRejected
    from plugins.knowledge.extractor import Extractor

    slow = Extractor(timeout_s=0.001)  # less than a child process needs to start
    try:
        with pytest.raises(InputRejected, match=r"took longer than 0\.001 s"):
            await slow.extract("a.txt", b"some text", max_bytes=1000)
        slow.timeout_s = 60
        document = await slow.extract("a.txt", b"some text", max_bytes=1000)
        assert document.sections[0].text == "some text"
    finally:
        slow.close()
