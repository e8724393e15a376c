"""With a cross-encoder configured, the fused hits are re-ordered by its scores.

The bundled embedding model stands in for a cross-encoder (its scoring head is untrained,
so only the plumbing is under test: the order follows the re-ranker's own scores)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.app import App
from plugins.knowledge.service import KnowledgeBase, indexed_text
from tests.knowledge.conftest import DOCS, base
from tests.knowledge.test_kb_stories import server_pk
from workers.embedding import EmbeddingConfig, EmbeddingWorker, bundled_embedding_model

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.model]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def reranker() -> AsyncIterator[EmbeddingWorker]:
    model = bundled_embedding_model()
    worker = EmbeddingWorker(EmbeddingConfig(model, reranker_path=model))
    try:
        yield worker
    finally:
        await worker.aclose()


async def test_hits_come_back_in_the_re_rankers_order(app: App, reranker: EmbeddingWorker) -> None:
    kb = base(app)
    reranking = KnowledgeBase(
        kb.settings,
        kb.library,
        kb.store,
        kb.embedder,
        count=kb.count,
        extractor=kb.extractor,
        reranker=reranker,
    )
    pk = await server_pk(app, "rerank")
    await kb.add(pk, "rules.md", (DOCS / "rules.md").read_bytes(), added_by=None, added_by_name="t")
    query = "what happens after a temporary ban"
    plain = await kb.search(pk, query, 8)
    ranked = await reranking.search(pk, query, 8)
    scores = await reranker.rerank(query, [indexed_text(h.chunk) for h in ranked])
    assert scores == sorted(scores, reverse=True)
    assert [h.score for h in ranked] == pytest.approx(scores)
    assert {h.chunk.id for h in ranked} <= {h.chunk.id for h in await kb.search(pk, query, 20)}
    assert len(ranked) == len(plain) == 8
