"""Knowledge-base search at scale: the whole hybrid search vs the raw libraries it calls.

One server's knowledge base holds the labelled set (tests/data/knowledge, embedded by the
bundled all-MiniLM-L6-v2 in its worker) plus synthetic passages up to ``--chunks`` in
all. Embedding 100,000 passages with this model takes most of an hour on 2 CPU cores, so
the synthetic passages get random unit vectors (their text is real, Zipf-distributed
words, so BM25 works on a realistic vocabulary); the 50 labelled questions then look for
their answers among them.

bot: ``KnowledgeBase.search`` (what ``search_knowledge`` and ``/kb search`` run): query
  embedding in the worker, chromadb query, BM25 (bm25s), fusion, SQL lookup of the hits.
raw: the same three steps straight on the libraries, in this process: the worker's
  ``embed`` of the query, ``collection.query`` on the same chromadb collection, and a
  ``bm25s.BM25`` built over the same texts with bm25s's own tokenizer.
Each question is asked ``--repeats`` times, alternating bot and raw; medians.

    .venv/bin/python bench/rag.py [--chunks 100000] [--repeats 5]

Final line: RESULT {"search_p50_ms": ..., "search_p99_ms": ..., "raw_p50_ms": ...,
"ratio_p50": ..., "recall_at_5": ..., "chunks": ..., "ingest_chunks_per_s": ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bm25s  # type: ignore[import-untyped]

from bot.app import App
from core.events import Origin
from plugins.knowledge.library import NewDocument, StoredChunk
from plugins.knowledge.service import KnowledgeBase, indexed_text
from rag.chroma_client import NoEmbeddingFunction, open_persistent
from rag.store import ChunkRecord, collection_name
from tests.fakes import ScriptedChatModel, script
from tests.knowledge.conftest import DOCS, knowledge_settings

QUESTIONS = json.loads((DOCS.parent / "questions.json").read_text())
PER_DOCUMENT = 10_000  # synthetic passages per synthetic document


def _words(rng: random.Random, vocabulary: list[str], n: int) -> str:
    return " ".join(rng.choices(vocabulary, weights=_ZIPF[: len(vocabulary)], k=n))


_ZIPF = [1 / (rank + 1) for rank in range(20_000)]


def _unit(rng: random.Random, size: int) -> list[float]:
    vector = [rng.gauss(0, 1) for _ in range(size)]
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


async def _fill(kb: KnowledgeBase, server: int, count: int, size: int) -> None:
    rng = random.Random(7)
    vocabulary = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9)))
        for _ in range(20_000)
    ]
    made = 0
    while made < count:
        n = min(PER_DOCUMENT, count - made)
        chunks = [StoredChunk(0, i, _words(rng, vocabulary, 120), "", None, 150) for i in range(n)]
        doc = await kb.library.insert_pending(
            NewDocument(
                server, f"synthetic-{made}.txt", "txt", f"{made:064d}", 0, None, "b", chunks
            )
        )
        stored = await kb.library.chunks([doc.id])
        records = [
            ChunkRecord(c.id, c.text, _unit(rng, size), {"document_id": doc.id}) for c in stored
        ]
        await kb.store.add(server, records)
        await kb.library.mark_ready(doc.id)
        made += n
        print(f"  filled {made}/{count}", file=sys.stderr)
    kb.keyword.invalidate(server)


def _flat(text: str) -> str:
    return " ".join(text.split())


async def main(args: argparse.Namespace) -> dict[str, object]:
    data = Path(tempfile.mkdtemp(prefix="bench-rag-")) / "data"
    settings = knowledge_settings(data)
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    app = await App.start(settings, chat_model=model)
    try:
        from plugins.knowledge import _state

        kb = _state.base
        assert kb is not None
        origin = Origin("console", "bench", "c", "u")
        server = (await app.services.storage.identify(origin)).server_pk
        size = len((await kb.embedder.embed(["probe"]))[0])  # the worker is up
        started = time.perf_counter()
        real = 0
        for path in sorted(DOCS.iterdir()):
            added = await kb.add(
                server, path.name, path.read_bytes(), added_by=None, added_by_name="bench"
            )
            real += added.document.chunk_count
        ingest_s = time.perf_counter() - started
        await _fill(kb, server, max(args.chunks - real, 0), size)
        total = (await kb.library.totals(server))[1]
        await kb.search(server, "warm up", 5)  # builds the BM25 index once

        items = [(c.id, indexed_text(c)) for c in await kb.library.server_chunks(server)]
        raw_bm25 = bm25s.BM25()
        raw_bm25.index(
            bm25s.tokenize([text for _, text in items], stopwords="en", show_progress=False),
            show_progress=False,
        )
        n = kb.settings.candidates
        await kb.store.close()
        client = open_persistent(data / "knowledge" / "chroma")  # chromadb.PersistentClient
        collection = client.get_collection(
            collection_name(server), embedding_function=NoEmbeddingFunction()
        )  # type: ignore[arg-type]
        kb.store = type(kb.store).persistent(data / "knowledge" / "chroma")
        await kb.search(server, "warm up", 5)  # loads the reopened vector index
        collection.query(query_embeddings=[[0.0] * (size - 1) + [1.0]], n_results=n)

        bot_ms: list[float] = []
        raw_ms: list[float] = []
        found = 0
        for repeat in range(args.repeats):
            for question in QUESTIONS:
                text = question["question"]
                t0 = time.perf_counter()
                hits = await kb.search(server, text, 5)
                bot_ms.append((time.perf_counter() - t0) * 1000)
                if repeat == 0:
                    found += any(_flat(question["answer"]) in _flat(h.chunk.text) for h in hits)
                t0 = time.perf_counter()
                [vector] = await kb.embedder.embed([text])
                collection.query(query_embeddings=[vector], n_results=n)
                raw_bm25.retrieve(
                    bm25s.tokenize([text], stopwords="en", show_progress=False),
                    k=n,
                    show_progress=False,
                )
                raw_ms.append((time.perf_counter() - t0) * 1000)
        bot_ms.sort()
        p50, raw50 = statistics.median(bot_ms), statistics.median(raw_ms)
        return {
            "search_p50_ms": round(p50, 2),
            "search_p99_ms": round(bot_ms[int(len(bot_ms) * 0.99) - 1], 2),
            "raw_p50_ms": round(raw50, 2),
            "ratio_p50": round(p50 / raw50, 3),
            "recall_at_5": round(found / len(QUESTIONS), 3),
            "chunks": total,
            "ingest_chunks_per_s": round(real / ingest_s, 1),
        }
    finally:
        await app.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    result = asyncio.run(main(parser.parse_args()))
    print("RESULT " + json.dumps(result))
