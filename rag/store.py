"""The vector store: chunk vectors in Chroma, one collection per chat server.

Chroma runs embedded (:meth:`VectorStore.persistent`, files in one folder) or as a
server (:meth:`VectorStore.remote`, ``http://host:port``). Each chat server's chunks
live in their own collection, ``atelier-server-<key>``, in cosine space, and every
method takes the server's key: no call can read or delete another server's chunks.

Chroma's client is synchronous, so every call runs in one dedicated worker thread:
the event loop never blocks on it, and one client never runs two calls at once. The
client is opened on the first call, in that thread; a store that cannot be opened or
reached raises :class:`~core.errors.StorageError`, and so does every Chroma failure.
Clients are made by ``rag.chroma_client``, which bounds every wait on a server.

The vectors are computed by the embedding worker (``rag.embedding``) and handed in;
Chroma is given :class:`~rag.chroma_client.NoEmbeddingFunction`, which refuses to
embed, because its default embedding function downloads an ONNX model at first use.

This module must never embed text, let Chroma download anything or send telemetry,
hand one server's chunks to another, or wait on a remote server without a time limit.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Metadata, PyEmbedding
from chromadb.errors import ChromaError, NotFoundError

from core.errors import StorageError
from rag.chroma_client import (
    SPACE,
    NoEmbeddingFunction,
    ServerAddress,
    close_client,
    open_client,
    open_persistent,
)

T = TypeVar("T")
MetadataValue = str | int | float | bool

COLLECTION_PREFIX = "atelier-server-"
_COLLECTION_NAME = re.compile(rf"{re.escape(COLLECTION_PREFIX)}(\d+)")
_VALUES_PAGE = 1000  # metadatas fetched per request when listing a key's values
DEFAULT_REMOTE_TIMEOUT_S = 30.0
_NO_EMBEDDING = NoEmbeddingFunction()


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk as stored: its vector, its text and what it came from.

    Attributes:
        id: Unique within the server (a chunk id from the database).
        text: The chunk's text, returned with each hit.
        embedding: The chunk's unit-length vector.
        metadata: Filterable facts (``document_id``, ``position``…); may be empty.
    """

    id: str
    text: str
    embedding: Sequence[float]
    metadata: Mapping[str, MetadataValue]


@dataclass(frozen=True)
class VectorHit:
    """One result of :meth:`VectorStore.query`.

    Attributes:
        id: The chunk's id.
        distance: Cosine distance to the query, 0 (same direction) to 2; smaller is nearer.
        text: The chunk's text.
        metadata: The chunk's metadata as stored.
    """

    id: str
    distance: float
    text: str
    metadata: dict[str, Any]


def collection_name(server: int) -> str:
    """The Chroma collection that holds one chat server's chunks.

    Raises:
        ValueError: ``server`` is not a non-negative integer.
    """
    if isinstance(server, bool) or not isinstance(server, int) or server < 0:
        raise ValueError(f"a server key is a non-negative integer, got {server!r}")
    return f"{COLLECTION_PREFIX}{server}"


class VectorStore:
    """Per-server vector collections in Chroma, called from asyncio.

    Make one with :meth:`persistent` or :meth:`remote`; :meth:`close` it when done.
    """

    def __init__(self, connect: Callable[[], ClientAPI], where: str) -> None:
        """Wrap a Chroma client factory (called once, in the worker thread).

        Args:
            connect: Opens the Chroma client; any exception it raises becomes a
                :class:`StorageError`.
            where: The store's location for error messages (a path or a URL).
        """
        self._connect = connect
        self._where = where
        self._client: ClientAPI | None = None
        self._batch = 0
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atelier-chroma")

    @classmethod
    def persistent(cls, path: Path) -> VectorStore:
        """An embedded store kept in a folder (made on first use).

        Args:
            path: The folder; one process at a time should open it.
        """
        return cls(lambda: open_persistent(path), str(path))

    @classmethod
    def remote(cls, url: str, *, timeout_s: float = DEFAULT_REMOTE_TIMEOUT_S) -> VectorStore:
        """A store on a Chroma server (``chroma run``), reached over HTTP.

        Args:
            url: ``http://host:port`` or ``https://host[:port]``; the port defaults to
                8000 for http, 443 for https.
            timeout_s: The limit for each request (connecting takes at most three).

        Raises:
            ConfigError: The URL is not of that form.
        """
        address = ServerAddress.parse(url)
        return cls(lambda: open_client(address, timeout_s), address.base)

    async def add(self, server: int, records: Sequence[ChunkRecord]) -> None:
        """Store chunks for a server; a chunk whose id is stored already is replaced
        (text, vector and metadata).

        Sent in batches no larger than the client accepts.
        """
        if not records:
            return
        name = collection_name(server)

        def add(client: ClientAPI) -> None:
            collection = client.get_or_create_collection(
                name, configuration={"hnsw": {"space": SPACE}}, embedding_function=_NO_EMBEDDING
            )
            for start in range(0, len(records), self._batch):
                batch = records[start : start + self._batch]
                ids = [record.id for record in batch]
                collection.delete(ids=ids)  # upsert would merge old metadata keys in
                embeddings: list[PyEmbedding] = [list(record.embedding) for record in batch]
                # Chroma takes None for "no metadata" (an empty dict is an error), but
                # its type hints do not say so.
                metadatas = cast(list[Metadata], [dict(r.metadata) or None for r in batch])
                collection.add(
                    ids=ids,
                    embeddings=embeddings,
                    documents=[record.text for record in batch],
                    metadatas=metadatas,
                )

        await self._run(add)

    async def query(self, server: int, embedding: Sequence[float], k: int) -> list[VectorHit]:
        """The ``k`` chunks of a server nearest to a vector, nearest first.

        Returns:
            At most ``k`` hits; ``[]`` when the server has no chunks.
        """
        name = collection_name(server)
        if k <= 0:
            return []
        vector: list[PyEmbedding] = [list(embedding)]

        def query(client: ClientAPI) -> list[VectorHit]:
            collection = self._collection(client, name)
            if collection is None:
                return []
            result = collection.query(
                query_embeddings=vector,
                n_results=k,
                include=["documents", "metadatas", "distances"],
            )
            return _hits(result)

        return await self._run(query)

    async def delete_where(self, server: int, key: str, value: int | str) -> None:
        """Delete a server's chunks whose metadata ``key`` equals ``value``."""
        name = collection_name(server)

        def delete(client: ClientAPI) -> None:
            collection = self._collection(client, name)
            if collection is not None:
                collection.delete(where={key: value})

        await self._run(delete)

    async def delete_ids(self, server: int, ids: Sequence[str]) -> None:
        """Delete a server's chunks by id; ids not stored are ignored."""
        name = collection_name(server)
        if not ids:
            return

        def delete(client: ClientAPI) -> None:
            collection = self._collection(client, name)
            if collection is None:
                return
            for start in range(0, len(ids), self._batch):
                collection.delete(ids=list(ids[start : start + self._batch]))

        await self._run(delete)

    async def values(self, server: int, key: str) -> set[MetadataValue]:
        """The distinct values of one metadata key among a server's chunks.

        Reads every chunk's metadata a page at a time (for start-up repair, not for
        answering questions).
        """
        name = collection_name(server)

        def values(client: ClientAPI) -> set[MetadataValue]:
            collection = self._collection(client, name)
            found: set[MetadataValue] = set()
            offset = 0
            while collection is not None:
                page = collection.get(include=["metadatas"], limit=_VALUES_PAGE, offset=offset)
                metadatas = page["metadatas"] or []
                found.update(_scalars(metadatas, key))
                if len(page["ids"]) < _VALUES_PAGE:
                    break
                offset += _VALUES_PAGE
            return found

        return await self._run(values)

    async def count(self, server: int) -> int:
        """How many chunks a server has stored."""
        name = collection_name(server)

        def count(client: ClientAPI) -> int:
            collection = self._collection(client, name)
            return 0 if collection is None else collection.count()

        return await self._run(count)

    async def drop_server(self, server: int) -> None:
        """Delete all of a server's chunks (its collection); nothing stored is fine."""
        name = collection_name(server)

        def drop(client: ClientAPI) -> None:
            try:
                client.delete_collection(name)
            except NotFoundError:
                pass

        await self._run(drop)

    async def servers(self) -> list[int]:
        """The keys of the servers that have a collection, ascending."""

        def servers(client: ClientAPI) -> list[int]:
            names = (collection.name for collection in client.list_collections())
            matches = (_COLLECTION_NAME.fullmatch(name) for name in names)
            return sorted(int(match.group(1)) for match in matches if match)

        return await self._run(servers)

    async def close(self) -> None:
        """Close the client and stop the worker thread; later calls raise."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        # Calls queued before this one run first: the thread is first-in, first-out.
        await loop.run_in_executor(self._executor, self._close_client)
        self._executor.shutdown(wait=False)

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            close_client(client)

    async def _run(self, call: Callable[[ClientAPI], T]) -> T:
        """Run ``call`` with the client in the worker thread."""
        if self._closed:
            raise StorageError(f"the vector store at {self._where} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, call)

    def _call(self, call: Callable[[ClientAPI], T]) -> T:
        """In the worker thread: open the client if needed, call, translate errors."""
        client = self._client if self._client is not None else self._open()
        try:
            return call(client)
        except (ChromaError, httpx.HTTPError, OSError) as exc:
            raise StorageError(f"vector store at {self._where}: {exc}") from exc

    def _open(self) -> ClientAPI:
        try:
            client = self._connect()
            self._batch = max(1, client.get_max_batch_size())
        except StorageError:
            raise
        except Exception as exc:  # Chroma reports a down server as a ValueError
            raise StorageError(f"cannot open the vector store at {self._where}: {exc}") from exc
        self._client = client
        return client

    @staticmethod
    def _collection(client: ClientAPI, name: str) -> Collection | None:
        """A server's collection; ``None`` if it has none."""
        try:
            return client.get_collection(name, embedding_function=_NO_EMBEDDING)
        except NotFoundError:
            return None


def _scalars(metadatas: Sequence[Metadata | None], key: str) -> Iterator[MetadataValue]:
    """The scalar values of ``key`` in some metadatas (lists and sparse vectors skipped)."""
    for metadata in metadatas:
        value = None if metadata is None else metadata.get(key)
        if isinstance(value, str | int | float | bool):
            yield value


def _hits(result: Mapping[str, Any]) -> list[VectorHit]:
    """Chroma's query result for one query vector, as hits."""
    ids: list[str] = result["ids"][0]
    distances = (result["distances"] or [[]])[0]
    documents = (result["documents"] or [[]])[0]
    metadatas = (result["metadatas"] or [[]])[0]
    return [
        VectorHit(
            id=chunk_id,
            distance=float(distances[i]),
            text=documents[i] if i < len(documents) and documents[i] is not None else "",
            metadata=dict(metadatas[i] or {}) if i < len(metadatas) else {},
        )
        for i, chunk_id in enumerate(ids)
    ]
