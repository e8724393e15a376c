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

import functools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.errors import StorageError
from core.events import Origin
from storage._engine import create_engine, upgrade_to_head
from storage._history import DEFAULT_MAX_CHARS, HistoryCache
from storage._writer import GroupCommitWriter
from storage.models import (
    MESSAGE_ROLES,
    audit_log,
    channels,
    conversations,
    messages,
    plugin_settings,
    servers,
    users,
    utcnow,
)
from storage.records import AuditEntry, Identity, PluginOverride, StoredMessage

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


def _translated(fn: Callable[_P, Awaitable[_T]]) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """Re-raise SQLAlchemy/driver errors as ``StorageError``, naming the operation."""

    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await fn(*args, **kwargs)
        except (SQLAlchemyError, OSError) as exc:  # OSError: the server is unreachable
            reason = getattr(exc, "orig", None) or exc
            raise StorageError(f"{fn.__name__} failed: {reason}") from exc

    return wrapper


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
        """The engine, for this package's other repositories (``storage.jobs.JobStore``).

        Code outside ``storage`` must not use it to open connections of its own.
        """
        return self._engine

    @_translated
    async def upgrade(self) -> None:
        """Apply pending Alembic migrations (``atelier db upgrade``); idempotent."""
        await upgrade_to_head(self._engine)

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

    @_translated
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

    # ---- per-server settings ---------------------------------------------------------

    @_translated
    async def plugin_overrides(self, server_pk: int) -> dict[str, PluginOverride]:
        """Every plugin override stored for the server, by plugin name."""
        t = plugin_settings
        stmt = select(t.c.plugin, t.c.enabled, t.c.config).where(t.c.server_id == server_pk)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return {row.plugin: PluginOverride(row.enabled, dict(row.config or {})) for row in rows}

    @_translated
    async def set_plugin_enabled(self, server_pk: int, plugin: str, enabled: bool | None) -> None:
        """Force ``plugin`` on or off in the server; None returns it to the default."""
        await self._upsert_plugin(server_pk, plugin, {"enabled": enabled})

    @_translated
    async def set_plugin_config(self, server_pk: int, plugin: str, config: dict[str, Any]) -> None:
        """Replace the server's config for ``plugin`` (validated by the caller)."""
        await self._upsert_plugin(server_pk, plugin, {"config": dict(config)})

    async def _upsert_plugin(self, server_pk: int, plugin: str, changes: dict[str, Any]) -> None:
        changes = {**changes, "updated_at": utcnow()}
        values = {"server_id": server_pk, "plugin": plugin, "enabled": None, "config": {}}
        stmt = self._insert(plugin_settings).values({**values, **changes})
        stmt = stmt.on_conflict_do_update(index_elements=["server_id", "plugin"], set_=changes)
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    @_translated
    async def get_system_prompt(self, server_pk: int) -> str | None:
        """The server's own system prompt, or None to use the configured default."""
        stmt = select(servers.c.system_prompt).where(servers.c.id == server_pk)
        async with self._engine.connect() as conn:
            prompt: str | None = (await conn.execute(stmt)).scalar_one_or_none()
        return prompt

    @_translated
    async def set_system_prompt(self, server_pk: int, prompt: str | None) -> None:
        """Set (or with None, reset) the server's system prompt."""
        stmt = update(servers).where(servers.c.id == server_pk).values(system_prompt=prompt)
        await self._update_one(stmt, f"no server with pk {server_pk}")

    @_translated
    async def set_chat_channel(self, channel_pk: int, enabled: bool) -> None:
        """Make the bot answer every message in the channel (or only when addressed)."""
        stmt = update(channels).where(channels.c.id == channel_pk).values(is_chat_channel=enabled)
        await self._update_one(stmt, f"no channel with pk {channel_pk}")

    @_translated
    async def chat_channel_at(self, platform: str, server_id: str, channel_id: str) -> bool:
        """Whether the channel (by the platform's ids) is a chat channel; creates nothing.

        The core asks this for every message nobody addressed to the bot, so strangers
        chatting among themselves leave no rows behind.
        """
        stmt = (
            select(channels.c.is_chat_channel)
            .join(servers, servers.c.id == channels.c.server_id)
            .where(
                servers.c.platform == platform,
                servers.c.external_id == server_id,
                channels.c.external_id == channel_id,
            )
        )
        async with self._engine.connect() as conn:
            return bool((await conn.execute(stmt)).scalar_one_or_none())

    @_translated
    async def server_key(self, platform: str, server_id: str, name: str = "") -> int:
        """The key of the server with the platform's id ``server_id``, created if new."""
        keys = {"platform": platform, "external_id": server_id}
        async with self._engine.begin() as conn:
            return await self._ensure(conn, servers, keys, name)

    @_translated
    async def server_ref(self, server_pk: int) -> tuple[str, str] | None:
        """``(platform, the platform's server id)`` of a stored server, or None."""
        stmt = select(servers.c.platform, servers.c.external_id).where(servers.c.id == server_pk)
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return (str(row.platform), str(row.external_id)) if row is not None else None

    @_translated
    async def is_chat_channel(self, channel_pk: int) -> bool:
        """Whether the bot answers every message in the channel; False if unknown."""
        stmt = select(channels.c.is_chat_channel).where(channels.c.id == channel_pk)
        async with self._engine.connect() as conn:
            return bool((await conn.execute(stmt)).scalar_one_or_none())

    async def _update_one(self, stmt: Any, missing: str) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt)
        if result.rowcount == 0:
            raise StorageError(missing)

    # ---- audit -----------------------------------------------------------------------

    @_translated
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

    @_translated
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
                created_at=_utc(row.created_at),
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

    @_translated
    async def _load_history(self, conversation_pk: int, limit: int) -> list[StoredMessage]:
        async with self._history.lock(conversation_pk):
            size = self._history.load_size(limit)
            params = {"conversation_pk": conversation_pk, "limit": size}
            async with self._engine.connect() as conn:
                rows = (await conn.execute(_HISTORY, params)).all()
            loaded = [
                StoredMessage(row.role, row.content, row.token_count, _utc(row.created_at))
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

    @_translated
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


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


__all__ = ["AuditEntry", "Identity", "PluginOverride", "Storage", "StoredMessage"]
