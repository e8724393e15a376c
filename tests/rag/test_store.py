"""Stories of the vector store, embedded and against a real Chroma server on loopback.

Each story runs twice: on a store in a temp folder, and on a ``chroma run`` server
started for this module on a free loopback port (the ``chroma`` CLI from the chromadb
package). Two chat servers share each store; neither may ever see the other's chunks.
Vectors are tiny (3 dimensions): the store does not care how long they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import chromadb
import httpx
import pytest
from chromadb.api.client import Client
from chromadb.config import Settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ConfigError, StorageError
from rag.chroma_client import NoEmbeddingFunction
from rag.store import ChunkRecord, VectorStore, collection_name

pytestmark = pytest.mark.timeout(120)

CHROMA = Path(sys.executable).with_name("chroma")
START_LIMIT_S = 60.0
OURS, THEIRS = 7, 8  # two chat servers' keys

Opener = Callable[[], VectorStore]
Answer = Callable[[bytes], bytes | None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_heartbeat(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"chroma run exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"chroma run gave no heartbeat in {START_LIMIT_S} s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Chroma server of its own, on a free loopback port, for this module."""
    folder = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "server.log"
    command = [str(CHROMA), "run", "--path", str(folder / "data")]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_heartbeat(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(params=["persistent", "remote"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens a store on the same data each time it is called (to reopen it)."""
    if request.param == "persistent":
        return lambda: VectorStore.persistent(tmp_path / "vectors")
    url: str = request.getfixturevalue("chroma_url")
    return lambda: VectorStore.remote(url, timeout_s=10)


@pytest.fixture
async def store(open_store: Opener) -> AsyncIterator[VectorStore]:
    """An open store; every chat server's chunks are dropped afterwards."""
    opened = open_store()
    try:
        yield opened
    finally:
        for server in await opened.servers():
            await opened.drop_server(server)
        await opened.close()


def chunk(chunk_id: str, vector: list[float], document: int, text: str = "") -> ChunkRecord:
    return ChunkRecord(chunk_id, text or f"text of {chunk_id}", vector, {"document_id": document})


async def test_a_question_finds_the_nearest_chunk_of_its_own_server(store: VectorStore) -> None:
    await store.add(OURS, [chunk("rules", [1, 0, 0], 1), chunk("faq", [0, 1, 0], 2)])
    # The other server has a chunk pointing exactly where the question points.
    await store.add(THEIRS, [chunk("secret", [0.9, 0.1, 0], 3, "their secret")])

    hits = await store.query(OURS, [0.9, 0.1, 0], k=20)  # k beyond the count is fine

    assert [hit.id for hit in hits] == ["rules", "faq"]
    assert hits[0].text == "text of rules"
    assert hits[0].metadata == {"document_id": 1}
    assert 0 <= hits[0].distance < hits[1].distance <= 2
    theirs = await store.query(THEIRS, [1, 0, 0], k=20)
    assert [hit.id for hit in theirs] == ["secret"]
    assert await store.count(OURS) == 2 and await store.count(THEIRS) == 1
    assert await store.servers() == [OURS, THEIRS]


async def test_deleting_a_document_removes_its_chunks_and_only_on_its_server(
    store: VectorStore,
) -> None:
    ours = [chunk(f"d1-{i}", [1, i, 0], 1) for i in range(3)] + [chunk("d2-0", [0, 1, 0], 2)]
    await store.add(OURS, ours)
    await store.add(THEIRS, [chunk("d1-0", [1, 0, 0], 1)])  # same id and document, elsewhere
    assert await store.values(OURS, "document_id") == {1, 2}

    await store.delete_where(OURS, "document_id", 1)

    assert await store.values(OURS, "document_id") == {2}
    assert [hit.id for hit in await store.query(OURS, [1, 0, 0], k=5)] == ["d2-0"]
    assert await store.count(THEIRS) == 1, "the other server's document is untouched"
    await store.delete_ids(OURS, ["d2-0", "never-stored"])
    assert await store.count(OURS) == 0
    assert await store.values(OURS, "missing-key") == set()


async def test_a_server_without_chunks_answers_empty_never_an_error(store: VectorStore) -> None:
    assert await store.query(OURS, [1, 0, 0], k=5) == []
    assert await store.count(OURS) == 0
    assert await store.values(OURS, "document_id") == set()
    await store.delete_where(OURS, "document_id", 1)
    await store.delete_ids(OURS, ["x"])
    await store.drop_server(OURS)
    await store.add(OURS, [])
    assert await store.servers() == []

    await store.add(OURS, [chunk("a", [1, 0, 0], 1)])
    assert await store.query(OURS, [1, 0, 0], k=0) == []
    await store.drop_server(OURS)
    assert await store.servers() == []
    assert await store.query(OURS, [1, 0, 0], k=5) == []


async def test_adding_a_chunk_again_replaces_it(store: VectorStore) -> None:
    await store.add(OURS, [chunk("a", [1, 0, 0], 1, "first")])
    await store.add(OURS, [ChunkRecord("a", "second", [0, 1, 0], {})])
    hits = await store.query(OURS, [0, 1, 0], k=5)
    assert [(hit.id, hit.text, hit.metadata) for hit in hits] == [("a", "second", {})]


async def test_a_large_upload_goes_in_batches_and_is_listed_in_pages(store: VectorStore) -> None:
    records = [chunk(f"c{i}", [1, i % 97, i % 89], i // 2) for i in range(6_000)]  # > 5,461
    await store.add(OURS, records)
    assert await store.count(OURS) == 6_000
    assert await store.values(OURS, "document_id") == set(range(3_000))
    await store.delete_ids(OURS, [record.id for record in records])
    assert await store.count(OURS) == 0


async def test_chunks_survive_closing_and_reopening(open_store: Opener) -> None:
    first = open_store()
    await first.add(OURS, [chunk("kept", [0, 0, 1], 5)])
    await first.close()
    with pytest.raises(StorageError, match="closed"):
        await first.count(OURS)

    second = open_store()
    try:
        assert [hit.id for hit in await second.query(OURS, [0, 0, 1], k=3)] == ["kept"]
        assert await second.values(OURS, "document_id") == {5}
    finally:
        await second.drop_server(OURS)
        await second.close()


async def test_chroma_is_never_asked_to_embed_nor_to_download_a_model(tmp_path: Path) -> None:
    cache = Path.home() / ".cache" / "chroma"
    cache_existed = cache.exists()
    store = VectorStore.persistent(tmp_path)
    await store.add(OURS, [chunk("a", [1, 0, 0], 1)])
    assert [hit.id for hit in await store.query(OURS, [1, 0, 0], k=1)] == ["a"]
    await store.close()

    with pytest.raises(StorageError, match="embedding worker"):
        NoEmbeddingFunction()(["any text"])
    # Another client opening the collection gets our function back from its config,
    # so a text query fails at once instead of fetching Chroma's default ONNX model.
    client = chromadb.PersistentClient(str(tmp_path), Settings(anonymized_telemetry=False))
    assert isinstance(client, Client)
    try:
        collection = client.get_collection(collection_name(OURS))
        with pytest.raises(StorageError, match="embedding worker"):
            collection.query(query_texts=["hello"], n_results=1)
        with pytest.raises(StorageError, match="embedding worker"):
            collection.add(ids=["b"], documents=["hello"])
    finally:
        client.close()
    assert cache.exists() == cache_existed, "something fetched a model into ~/.cache/chroma"


@pytest.mark.parametrize("server", [-1, True, 1.5, "7"])
async def test_a_server_key_is_a_non_negative_integer(tmp_path: Path, server: object) -> None:
    store = VectorStore.persistent(tmp_path)
    try:
        with pytest.raises(ValueError, match="server key"):
            await store.count(server)  # type: ignore[arg-type]
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "127.0.0.1:8000",
        "ftp://127.0.0.1:8000",
        "http://",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:port",
        "http://127.0.0.1:8000/api/v2",
        "http://127.0.0.1:8000/?tenant=x",
        "http://user:pass@127.0.0.1:8000",
    ],
)
def test_a_malformed_server_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        VectorStore.remote(url)


async def test_a_server_that_is_down_is_a_clear_error_at_once() -> None:
    store = VectorStore.remote(f"http://127.0.0.1:{_free_port()}", timeout_s=5)
    started = time.monotonic()
    with pytest.raises(StorageError, match="no Chroma server answers"):
        await store.query(OURS, [1, 0, 0], k=3)
    assert time.monotonic() - started < 5
    await store.close()


@contextlib.asynccontextmanager
async def http_server(answer: Answer) -> AsyncIterator[str]:
    """A loopback HTTP server that sends what ``answer`` returns, or hangs on ``None``."""
    hanging: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reply = answer(await reader.readuntil(b"\r\n\r\n"))
        if reply is None:
            hanging.append(writer)  # never answered; closed when the story ends
            return
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in hanging:
            writer.close()
        server.close()
        await server.wait_closed()


def heartbeat_only(request: bytes) -> bytes | None:
    """Answers Chroma's heartbeat, hangs on everything else."""
    if b"/heartbeat" not in request.split(b"\r\n", 1)[0]:
        return None
    body = b'{"nanosecond heartbeat": 1}'
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Content-Type: application/json\r\n\r\n" + body


async def test_a_server_that_hangs_is_an_error_within_the_time_limit() -> None:
    async with http_server(lambda request: None) as url:
        store = VectorStore.remote(url, timeout_s=0.5)
        with pytest.raises(StorageError, match="no Chroma server answers"):
            await asyncio.wait_for(store.count(OURS), timeout=10)
        await store.close()


async def test_a_server_that_hangs_after_its_heartbeat_is_an_error_in_time() -> None:
    async with http_server(heartbeat_only) as url:
        store = VectorStore.remote(url, timeout_s=0.5)
        with pytest.raises(StorageError, match="did not answer"):
            await asyncio.wait_for(store.count(OURS), timeout=10)
        await store.close()


HOSTILE_TEXT = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["\u200b" * 50, "\u202eevil\u202c", "שלום עולם", "👩\u200d💻" * 20, "\x00"]),
    st.integers(1, 200_000).map(lambda n: "x" * n),
)


@pytest.mark.timeout(300)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(texts=st.lists(HOSTILE_TEXT, min_size=1, max_size=5), value=st.text(max_size=50))
def test_any_text_comes_back_exactly_as_it_went_in(
    tmp_path: Path, texts: list[str], value: str
) -> None:
    async def story() -> None:
        store = VectorStore.persistent(tmp_path / "hostile")
        try:
            records = [
                ChunkRecord(f"t{i}", text, [1.0, float(i), 0.5], {"heading": value, "i": i})
                for i, text in enumerate(texts)
            ]
            await store.add(OURS, records)
            hits = await store.query(OURS, [1.0, 0.0, 0.5], k=len(texts))
            assert {hit.id: hit.text for hit in hits} == {r.id: r.text for r in records}
            assert {hit.metadata["heading"] for hit in hits} == {value}
        finally:
            await store.drop_server(OURS)
            await store.close()

    asyncio.run(story())
