"""Knowledge-base search at 10k and 100k passages: the whole hybrid search vs chromadb alone.

One server's knowledge base holds the labelled set (tests/data/knowledge, embedded by the
bundled all-MiniLM-L6-v2 in its worker; ``ingest_chunks_per_s`` is that ingestion: read,
chunk, embed, store) plus synthetic passages up to each size in ``--sizes``. Embedding
100,000 passages with this model takes about an hour on 2 CPU cores (~28 passages/s per
core), so the synthetic passages get random unit vectors; their text is real
Zipf-distributed words, so BM25 works on a realistic vocabulary. The 50 labelled
questions then look for their answers among all of them.

p50/p99: ``KnowledgeBase.search`` (what ``search_knowledge`` and ``/kb search`` run):
  query embedding in the worker, chromadb, BM25 (bm25s), weighted reciprocal rank
  fusion, SQL lookup of the hits.
raw_chroma: ``collection.query`` on the same chromadb collection with the questions'
  precomputed embeddings (the floor of any dense search).
raw_stack: the worker's ``embed`` of the query + ``collection.query`` + a ``bm25s.BM25``
  built over the same texts with bm25s's own tokenizer: the libraries alone.
Each question is asked ``--repeats`` times per size, alternating; medians. Recall@5 of
dense, BM25 and hybrid search is measured at the largest size.

    .venv/bin/python bench/rag.py [--sizes 10000 100000] [--repeats 5]

Final line: RESULT {"ingest_chunks_per_s": ..., "p50_ms_10k": ..., "p99_ms_10k": ...,
"raw_chroma_p50_ms_10k": ..., "raw_stack_p50_ms_10k": ..., "p50_ms_100k": ...,
"p99_ms_100k": ..., "raw_chroma_p50_ms_100k": ..., "raw_stack_p50_ms_100k": ...,
"recall5_dense": ..., "recall5_bm25": ..., "recall5_hybrid": ..., "chunks": ...}
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
from typing import Any

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


async def _fill(kb: KnowledgeBase, server: int, count: int, size: int, seed: int) -> None:
    rng = random.Random(seed)
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
                server,
                f"synthetic-{seed}-{made}.txt",
                "txt",
                f"{seed:032d}{made:032d}",
                0,
                None,
                "b",
                chunks,
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


async def _measure(
    kb: KnowledgeBase, server: int, collection: Any, vectors: list[list[float]], repeats: int
) -> dict[str, float]:
    """Search latency (bot), chromadb alone with precomputed query vectors, and the raw
    stack (embed + chromadb + bm25s), alternating; milliseconds."""
    n = kb.settings.candidates
    texts = [q["question"] for q in QUESTIONS]
    await kb.search(server, "warm up", 5)  # builds the BM25 index once
    raw_bm25 = bm25s.BM25()
    items = [indexed_text(c) for c in await kb.library.server_chunks(server)]
    raw_bm25.index(bm25s.tokenize(items, stopwords="en", show_progress=False), show_progress=False)
    bot, chroma, stack = [], [], []
    for _ in range(repeats):
        for text, vector in zip(texts, vectors, strict=True):
            t0 = time.perf_counter()
            await kb.search(server, text, 5)
            t1 = time.perf_counter()
            collection.query(query_embeddings=[vector], n_results=n)
            t2 = time.perf_counter()
            [fresh] = await kb.embedder.embed([text])
            collection.query(query_embeddings=[fresh], n_results=n)
            raw_bm25.retrieve(
                bm25s.tokenize([text], stopwords="en", show_progress=False),
                k=n,
                show_progress=False,
            )
            t3 = time.perf_counter()
            bot.append((t1 - t0) * 1000)
            chroma.append((t2 - t1) * 1000)
            stack.append((t3 - t2) * 1000)
    bot.sort()
    return {
        "p50_ms": round(statistics.median(bot), 2),
        "p99_ms": round(bot[max(int(len(bot) * 0.99) - 1, 0)], 2),
        "raw_chroma_p50_ms": round(statistics.median(chroma), 2),
        "raw_stack_p50_ms": round(statistics.median(stack), 2),
    }


async def _recall(kb: KnowledgeBase, server: int) -> dict[str, float]:
    found = dict.fromkeys(("dense", "keyword", "hybrid"), 0)
    for question in QUESTIONS:
        for mode in found:
            hits = await kb.search(server, question["question"], 5, mode=mode)  # type: ignore[arg-type]
            found[mode] += any(_flat(question["answer"]) in _flat(h.chunk.text) for h in hits)
    return {mode: round(count / len(QUESTIONS), 3) for mode, count in found.items()}


async def main(args: argparse.Namespace) -> dict[str, object]:
    data = Path(tempfile.mkdtemp(prefix="bench-rag-")) / "data"
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    app = await App.start(knowledge_settings(data), chat_model=model)
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
        result: dict[str, object] = {
            "ingest_chunks_per_s": round(real / (time.perf_counter() - started), 1)
        }
        vectors = await kb.embedder.embed([q["question"] for q in QUESTIONS])
        client = open_persistent(data / "knowledge" / "chroma")  # chromadb.PersistentClient
        collection = client.get_collection(
            collection_name(server),
            embedding_function=NoEmbeddingFunction(),  # type: ignore[arg-type]
        )
        filled = real
        for target in args.sizes:
            await _fill(kb, server, max(target - filled, 0), size, seed=target)
            filled = max(target, filled)
            label = f"{target // 1000}k"
            for key, value in (
                await _measure(kb, server, collection, vectors, args.repeats)
            ).items():
                result[f"{key}_{label}"] = value
            print(f"  {label}: {result}", file=sys.stderr)
        recall = await _recall(kb, server)
        result |= {
            "recall5_dense": recall["dense"],
            "recall5_bm25": recall["keyword"],
            "recall5_hybrid": recall["hybrid"],
            "chunks": (await kb.library.totals(server))[1],
        }
        return result
    finally:
        await app.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=5)
    result = asyncio.run(main(parser.parse_args()))
    print("RESULT " + json.dumps(result))
