"""The storage API the bot core uses: identities, per-server settings, audit, chat history.

``Storage`` is the only way the rest of Atelier touches the database. It speaks
platform-neutral ``Origin``s and surrogate integer keys, uses Core statements (no ORM unit
of work) so the per-message path stays cheap, and batches message inserts through one
group-commit writer.

Several bot processes may share one PostgreSQL, so it caches only what no other process
can change: origin → ``Identity`` (surrogate keys never change once assigned) and, unless
``cache_history=False``, the newest messages of conversations this process serves (see
``storage._history`` for why that is safe). Database failures surface as
``core.errors.StorageError``; it never swallows one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import MetaData, Table, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.errors import StorageError
from core.events import Origin
from storage._engine import History, create_engine, upgrade_to_head
from storage._history import DEFAULT_MAX_CHARS, HistoryCache
from storage._writer import GroupCommitWriter
from storage.base import as_utc, translated
from storage.models import (
    MESSAGE_ROLES,
    audit_log,
    channels,
    conversations,
    messages,
    servers,
    users,
    utcnow,
)
from storage.records import AuditEntry, Identity, StoredMessage
from storage.settings import SettingStore

IDENTITY_CACHE_SIZE = 10_000
"""How many origins' identities one process keeps in memory (least recently used go)."""

_SUPPORTED_BACKENDS = ("sqlite", "postgresql")
_P = ParamSpec("_P")
_T = TypeVar("_T")

# Built once: the hot path should not rebuild statements for every message.
_HISTORY = (
    select(messages.c.role, messages.c.content, messages.c.token_count, messages.c.created_at)
    .where(messages.c.conversation_id == bindparam("conversation_pk"))
    .order_by(messages.c.id.desc())
    .limit(bindparam("limit"))
)


class Storage:
    """Atelier's database: open with ``await Storage.open(url)``, end with ``close()``."""

    def __init__(self, engine: AsyncEngine, *, cache_history: bool = True) -> None:
        """Wrap ``engine``; prefer ``Storage.open``, which also migrates and starts writing."""
        backend = engine.dialect.name
        if backend not in _SUPPORTED_BACKENDS:
            raise StorageError(
                f"unsupported database backend {backend!r} (use sqlite or postgresql)"
            )
        self._engine = engine
        self._backend = backend
        self.settings = SettingStore(engine)  # scoped settings (cached by the app)
        self._identities: OrderedDict[tuple[str, str, str, str], Identity] = OrderedDict()
        self._writer = GroupCommitWriter(engine, messages)
        self._history: HistoryCache[StoredMessage] = HistoryCache(
            DEFAULT_MAX_CHARS if cache_history else 0
        )
        self._closed = False

    @classmethod
    async def open(
        cls, url: str, *, echo: bool = False, migrate: bool = True, cache_history: bool = True
    ) -> Storage:
        """Connect to ``url`` (SQLite or PostgreSQL), migrate to head unless told not to.

        ``cache_history`` keeps recent conversations' newest messages in this process (see
        ``storage._history``); turn it off where several processes serve one conversation.
        """
        engine = create_engine(url, echo=echo)
        try:
            storage = cls(engine, cache_history=cache_history)
            if migrate:
                await storage.upgrade()
        except BaseException:
            await engine.dispose()
            raise
        storage._writer.start()
        return storage

    @property
    def engine(self) -> AsyncEngine:
        """The engine, for this package's other repositories (``plugins.imagine.jobs.JobStore``).

        Code outside ``storage`` must not use it to open connections of its own.
        """
        return self._engine

    @translated
    async def upgrade(self) -> None:
        """Apply pending Alembic migrations (``atelier db upgrade``); idempotent."""
        await upgrade_to_head(self._engine)

    @translated
    async def upgrade_plugin(
        self, plugin: str, versions: Path, metadata: MetaData | None = None
    ) -> None:
        """Apply a plugin's own migrations (folder ``versions``, version table
        ``alembic_version_<plugin>``); idempotent. Its tables are the plugin's alone."""
        history = History(versions, f"alembic_version_{plugin}", metadata)
        await upgrade_to_head(self._engine, history)

    async def close(self) -> None:
        """Commit every pending message write, then release all connections."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._writer.close()
        finally:
            await self._engine.dispose()

    # ---- identities ------------------------------------------------------------------

    async def identify(self, origin: Origin) -> Identity:
        """The keys of ``origin``'s server, channel, user and conversation, created if new.

        Cached per process after the first call (no database round trip), so a renamed
        server, channel or user is renamed in storage when next looked up there.
        """
        key = origin.conversation_key
        cached = self._identities.get(key)
        if cached is not None:
            self._identities.move_to_end(key)
            return cached
        identity = await self._lookup_identity(origin)
        self._identities[key] = identity
        if len(self._identities) > IDENTITY_CACHE_SIZE:
            self._identities.popitem(last=False)
        return identity

    @translated
    async def _lookup_identity(self, origin: Origin) -> Identity:
        async with self._engine.begin() as conn:
            return await self._identify(conn, origin)

    async def _identify(self, conn: AsyncConnection, origin: Origin) -> Identity:
        platform = origin.platform
        server_pk = await self._ensure(
            conn,
            servers,
            {"platform": platform, "external_id": origin.server_id},
            origin.server_name,
        )
        channel_pk = await self._ensure(
            conn,
            channels,
            {"server_id": server_pk, "external_id": origin.channel_id},
            origin.channel_name,
        )
        user_pk = await self._ensure(
            conn, users, {"platform": platform, "external_id": origin.user_id}, origin.user_name
        )
        keys = {"server_id": server_pk, "channel_id": channel_pk, "user_id": user_pk}
        conversation_pk = await self._ensure(conn, conversations, keys, None)
        return Identity(server_pk, channel_pk, user_pk, conversation_pk)

    async def _ensure(
        self, conn: AsyncConnection, table: Table, keys: dict[str, Any], name: str | None
    ) -> int:
        """The id of the row with ``keys``, inserting it if missing (race-safe)."""
        where = [table.c[column] == value for column, value in keys.items()]
        columns = [table.c.id, table.c.name] if name is not None else [table.c.id]
        row = (await conn.execute(select(*columns).where(*where))).first()
        if row is None:
            values = {**keys, "created_at": utcnow()} if "created_at" in table.c else dict(keys)
            if name is not None:
                values["name"] = name
            # A concurrent first sight of the same origin may insert first: ignore, re-read.
            insert = self._insert(table).values(values)
            await conn.execute(insert.on_conflict_do_nothing(index_elements=list(keys)))
            return int((await conn.execute(select(table.c.id).where(*where))).scalar_one())
        if name and row.name != name:
            await conn.execute(update(table).where(table.c.id == row.id).values(name=name))
        return int(row.id)

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        if self._backend == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # ---- servers by the platform's ids ------------------------------------------------

    @translated
    async def server_key(self, platform: str, server_id: str, name: str = "") -> int:
        """The key of the server with the platform's id ``server_id``, created if new."""
        keys = {"platform": platform, "external_id": server_id}
        async with self._engine.begin() as conn:
            return await self._ensure(conn, servers, keys, name)

    @translated
    async def move_server(self, platform: str, old_id: str, new_id: str) -> bool:
        """The platform gave a server a new id (a Telegram group that became a supergroup):
        keep its row — settings, plugins, channels and conversations — under the new id.

        Channels named after the old id (the chat itself, ``old:topic``) follow. A row that
        already appeared under the new id (a message that raced the migration) is merged
        away. False when no server had the old id.
        """
        s, c = servers.c, channels.c
        async with self._engine.begin() as conn:
            old = (
                await conn.execute(
                    select(s.id).where(s.platform == platform, s.external_id == old_id)
                )
            ).scalar_one_or_none()
            if old is None:
                return False
            await conn.execute(
                delete(servers).where(s.platform == platform, s.external_id == new_id)
            )
            await conn.execute(update(servers).where(s.id == old).values(external_id=new_id))
            for row in (
                await conn.execute(select(c.id, c.external_id).where(c.server_id == old))
            ).all():
                name = str(row.external_id)
                if name == old_id or name.startswith(f"{old_id}:"):
                    moved = new_id + name[len(old_id) :]
                    await conn.execute(
                        update(channels).where(c.id == row.id).values(external_id=moved)
                    )
        for key in [k for k in self._identities if k[0] == platform and k[1] == old_id]:
            del self._identities[key]
        return True

    @translated
    async def server_ref(self, server_pk: int) -> tuple[str, str] | None:
        """``(platform, the platform's server id)`` of a stored server, or None."""
        stmt = select(servers.c.platform, servers.c.external_id).where(servers.c.id == server_pk)
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return (str(row.platform), str(row.external_id)) if row is not None else None

    async def _update_one(self, stmt: Any, missing: str) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt)
        if result.rowcount == 0:
            raise StorageError(missing)

    # ---- audit -----------------------------------------------------------------------

    @translated
    async def audit(
        self,
        server_pk: int,
        user_pk: int | None,
        action: str,
        target: str,
        *,
        allowed: bool,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record that ``user_pk`` tried ``action`` on ``target`` and whether it was allowed.

        The row is always written: an ``action`` or ``target`` longer than its column is
        shortened (ending in "…"); keep the full values in ``detail``.
        """
        row = {
            "server_id": server_pk,
            "user_id": user_pk,
            "action": _fit_column(action, audit_log.c.action),
            "target": _fit_column(target, audit_log.c.target),
            "allowed": allowed,
            "detail": dict(detail or {}),
            "created_at": utcnow(),
        }
        async with self._engine.begin() as conn:
            await conn.execute(audit_log.insert().values(row))

    @translated
    async def audit_entries(self, server_pk: int, limit: int = 50) -> list[AuditEntry]:
        """The server's latest ``limit`` audit entries, newest first."""
        t = audit_log
        stmt = select(t).where(t.c.server_id == server_pk).order_by(t.c.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            AuditEntry(
                server_pk=row.server_id,
                user_pk=row.user_id,
                action=row.action,
                target=row.target,
                allowed=row.allowed,
                detail=dict(row.detail or {}),
                created_at=as_utc(row.created_at),
            )
            for row in rows
        ]

    # ---- chat history ----------------------------------------------------------------

    async def history(self, conversation_pk: int, limit: int) -> list[StoredMessage]:
        """The conversation's last ``limit`` messages, oldest first."""
        if limit <= 0:
            return []
        cached = self._history.get(conversation_pk, limit)
        if cached is not None:
            return cached
        return await self._load_history(conversation_pk, limit)

    @translated
    async def _load_history(self, conversation_pk: int, limit: int) -> list[StoredMessage]:
        async with self._history.lock(conversation_pk):
            size = self._history.load_size(limit)
            params = {"conversation_pk": conversation_pk, "limit": size}
            async with self._engine.connect() as conn:
                rows = (await conn.execute(_HISTORY, params)).all()
            loaded = [
                StoredMessage(row.role, row.content, row.token_count, as_utc(row.created_at))
                for row in reversed(rows)
            ]
            self._history.fill(conversation_pk, loaded, size)
        return loaded[-limit:]

    async def append_messages(
        self, conversation_pk: int, messages: Sequence[tuple[str, str, int | None]]
    ) -> None:
        """Append ``(role, content, token_count)`` messages; returns once committed.

        Concurrent calls share one transaction (group commit). Raises ``ValueError`` for an
        unknown role and ``StorageError`` if the write fails or storage is closed.
        """
        now = utcnow()
        for role, _, _ in messages:
            if role not in MESSAGE_ROLES:
                raise ValueError(f"unknown message role {role!r}; expected one of {MESSAGE_ROLES}")
        stored = [StoredMessage(role, text, tokens, now) for role, text, tokens in messages]
        if not stored:
            return
        rows = [
            {
                "conversation_id": conversation_pk,
                "role": m.role,
                "content": m.content,
                "token_count": m.token_count,
                "created_at": now,
            }
            for m in stored
        ]
        with self._writer.caller():
            async with self._history.lock(conversation_pk):
                try:
                    await self._writer.submit(rows)
                except BaseException:
                    # Failed or cancelled: the rows may or may not be stored; re-read later.
                    self._history.drop(conversation_pk)
                    raise
                self._history.extend(conversation_pk, stored)

    @translated
    async def clear_conversation(self, conversation_pk: int) -> int:
        """Delete the conversation's messages; returns how many were deleted."""
        stmt = delete(messages).where(messages.c.conversation_id == conversation_pk)
        async with self._history.lock(conversation_pk):
            self._history.drop(conversation_pk)
            async with self._engine.begin() as conn:
                result = await conn.execute(stmt)
            self._history.fill(conversation_pk, [], self._history.load_size(0))
        return int(result.rowcount)


def _fit_column(text: str, column: Any) -> str:
    """``text`` shortened to the column's declared length, marked with "…" when cut."""
    length = getattr(column.type, "length", None)
    if length is None or len(text) <= length:
        return text
    return text[: length - 1] + "…"


__all__ = ["AuditEntry", "Identity", "Storage", "StoredMessage"]
