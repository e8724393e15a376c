"""Chroma clients for the vector store: opened offline, without embedding, in time.

Embedded (:func:`open_persistent`) or over HTTP (:func:`open_client`), always with
telemetry off. Chroma is never given its default embedding function (it downloads an
ONNX model at first use) but :class:`NoEmbeddingFunction`, which refuses to embed:
vectors come from the embedding worker.

Chroma's HTTP client waits forever (``httpx.Client(timeout=None)``, no setting to
change it), makes requests while it is being constructed, and never closes its
connections. So here: the URL is checked up front; a heartbeat with a time limit comes
first; the client is constructed in a throw-away thread that is waited for only so
long; each request of the client then gets the limit; and closing a client closes its
connections too. The last two reach into the client (``_server._session``, the
``_admin_client``'s too): if a Chroma release moves them, requests go unlimited and
connections are closed by the garbage collector, but nothing breaks.

This module must never let Chroma embed or download anything, wait on a server
without a time limit, keep a client it gave up on, or accept a URL that carries a path
or credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.client import Client
from chromadb.api.types import Embeddable, EmbeddingFunction, Embeddings, Space
from chromadb.config import Settings
from chromadb.utils.embedding_functions import register_embedding_function

from core.errors import ConfigError, StorageError

SPACE: Space = "cosine"  # every collection's distance
_DEFAULT_PORTS = {"http": 8000, "https": 443}  # 8000: where `chroma run` listens


@register_embedding_function
class NoEmbeddingFunction(EmbeddingFunction[Embeddable]):
    """The embedding function Chroma is given: it refuses to embed anything.

    Chroma stores its name with each collection (``atelier-external``) and rebuilds it
    from that name on reopening; it is registered with Chroma for that on import.
    """

    def __init__(self) -> None:
        """Nothing to configure: the vectors come from the embedding worker."""

    def __call__(self, input: Embeddable) -> Embeddings:
        """Refuse: Chroma was asked to embed text, which Atelier never lets it do."""
        raise StorageError(
            "the vector store was given text without vectors; "
            "embeddings come from the embedding worker"
        )

    @staticmethod
    def name() -> str:
        """The name Chroma persists with each collection."""
        return "atelier-external"

    def get_config(self) -> dict[str, Any]:
        """Nothing to persist."""
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> NoEmbeddingFunction:
        """Rebuild from a persisted (empty) config."""
        return NoEmbeddingFunction()

    def default_space(self) -> Space:
        """Cosine: the embedder's vectors are unit length."""
        return SPACE

    def supported_spaces(self) -> list[Space]:
        """Only cosine is ever used."""
        return [SPACE]


def open_persistent(path: Path) -> ClientAPI:
    """An embedded Chroma client on a folder (made if missing); blocks on disk I/O."""
    return chromadb.PersistentClient(str(path), Settings(anonymized_telemetry=False))


@dataclass(frozen=True)
class ServerAddress:
    """Where a Chroma server listens.

    Attributes:
        host: Host name or IP address (IPv6 without brackets).
        port: TCP port.
        ssl: Whether to speak HTTPS.
    """

    host: str
    port: int
    ssl: bool

    @classmethod
    def parse(cls, url: str) -> ServerAddress:
        """Read ``http://host:port`` or ``https://host[:port]``.

        The port defaults to 8000 for http (``chroma run``'s), 443 for https.

        Raises:
            ConfigError: Another scheme, no host, a bad port, credentials, a path, a
                query or a fragment.
        """
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"vector store URL {url!r} is not a valid URL: {exc}") from exc
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ConfigError(f"vector store URL {url!r} must look like http://host:port")
        if parts.username is not None or parts.password is not None:
            raise ConfigError("vector store URL must not carry credentials")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(f"vector store URL {url!r} must have no path, query or fragment")
        ssl = parts.scheme == "https"
        return cls(parts.hostname, port or _DEFAULT_PORTS[parts.scheme], ssl)

    @property
    def base(self) -> str:
        """The server's base URL, ``http://host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl else 'http'}://{host}:{self.port}"


def open_client(address: ServerAddress, timeout_s: float) -> ClientAPI:
    """A Chroma HTTP client whose every request has a time limit.

    Blocks for at most about ``3 * timeout_s`` (call it off the event loop).

    Raises:
        StorageError: No Chroma server answered in time, or it refused the client.
    """
    _heartbeat(address.base, timeout_s)

    def construct() -> ClientAPI:
        settings = Settings(anonymized_telemetry=False)
        return chromadb.HttpClient(address.host, address.port, address.ssl, settings=settings)

    client = _within(2 * timeout_s, construct, address.base)
    for session in _sessions(client):
        session.timeout = httpx.Timeout(timeout_s)
    return client


def close_client(client: ClientAPI) -> None:
    """Close a Chroma client and, for an HTTP client, its connections."""
    if isinstance(client, Client):  # what chromadb's factories return; ClientAPI lacks close
        client.close()
    # Each HTTP client has a System (and so sessions) of its own: closing is safe.
    for session in _sessions(client):
        session.close()


def _heartbeat(base: str, timeout_s: float) -> None:
    """Check, within ``timeout_s``, that a Chroma server answers at ``base``.

    Raises:
        StorageError: It does not (refused, unreachable, hung, or not Chroma).
    """
    try:
        response = httpx.get(f"{base}/api/v2/heartbeat", timeout=timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise StorageError(f"no Chroma server answers at {base}: {exc!r}") from exc


def _within(timeout_s: float, construct: Callable[[], ClientAPI], base: str) -> ClientAPI:
    """Construct a client in a daemon thread; give up on it after ``timeout_s``.

    A client finished after the caller gave up is closed by its thread.
    """
    lock = threading.Lock()
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["client"] = construct()
        except Exception as exc:
            outcome["error"] = exc
        with lock:
            done.set()
            late = outcome.get("abandoned", False)
        if late and "client" in outcome:
            close_client(outcome["client"])

    threading.Thread(target=run, name="atelier-chroma-connect", daemon=True).start()
    done.wait(timeout_s)
    with lock:
        if not done.is_set():
            outcome["abandoned"] = True
            raise StorageError(f"the Chroma server at {base} did not answer in {timeout_s} s")
    if "error" in outcome:
        error: Exception = outcome["error"]
        raise StorageError(f"cannot connect to the Chroma server at {base}: {error}") from error
    client: ClientAPI = outcome["client"]
    return client


def _sessions(client: ClientAPI) -> Iterator[httpx.Client]:
    """The ``httpx.Client`` sessions inside a Chroma HTTP client and its admin client."""
    for owner in (client, getattr(client, "_admin_client", None)):
        session = getattr(getattr(owner, "_server", None), "_session", None)
        if isinstance(session, httpx.Client):
            yield session
