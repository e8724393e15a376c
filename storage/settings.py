"""Scoped settings in storage: every stored value of one scope and target, and changes.

One table (``settings``) holds the values that servers, channels and users set —
``(scope, target, namespace, key) → JSON value`` — for the core (namespace ``core``: a
server's system prompt, a channel's chat flag) and for plugins (namespace = the plugin's
name: on/off per server, its per-server, -channel and -user settings). Defaults live in
code, never here: a missing row means "the default". Caching and change events are the
app's (``bot.scoped``); this module only reads and writes.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import StorageError
from storage.base import translated
from storage.models import channels, servers, settings, users, utcnow

Scope = Literal["global", "server", "channel", "user"]
Values = dict[tuple[str, str], Any]  # (namespace, key) -> value
_TARGETS = {"server": servers, "channel": channels, "user": users}


class SettingStore:
    """Reads and writes the ``settings`` table (use ``Storage.settings``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    @translated
    async def values(self, scope: Scope, target: int) -> Values:
        """Every value stored for one scope and target, by ``(namespace, key)``."""
        t = settings.c
        query = select(t.namespace, t.key, t.value).where(t.scope == scope, t.target_id == target)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {(row.namespace, row.key): row.value for row in rows}

    @translated
    async def set(self, scope: Scope, target: int, namespace: str, key: str, value: Any) -> None:
        """Store ``value`` (None: delete the row, back to the default).

        ``StorageError`` when the server, channel or user ``target`` does not exist.
        """
        t = settings.c
        where = (t.scope == scope, t.target_id == target, t.namespace == namespace, t.key == key)
        async with self._engine.begin() as conn:
            if scope != "global":
                table = _TARGETS[scope]
                found = await conn.execute(select(table.c.id).where(table.c.id == target))
                if found.first() is None:
                    raise StorageError(f"no {scope} with pk {target}")
            if value is None:
                await conn.execute(delete(settings).where(*where))
                return
            row = {"scope": scope, "target_id": target, "namespace": namespace, "key": key}
            changes = {"value": value, "updated_at": utcnow()}
            insert = (postgresql.insert if self._postgres else sqlite.insert)(settings)
            stmt = insert.values({**row, **changes}).on_conflict_do_update(
                index_elements=list(row), set_=changes
            )
            await conn.execute(stmt)

    @translated
    async def chat_channel_at(self, platform: str, server_id: str, channel_id: str) -> bool:
        """Whether the channel (by the platform's ids) is a chat channel; creates nothing.

        The core asks this for every message nobody addressed to the bot, so strangers
        chatting among themselves leave no rows behind.
        """
        t = settings.c
        query = (
            select(t.value)
            .join(channels, channels.c.id == t.target_id)
            .join(servers, servers.c.id == channels.c.server_id)
            .where(
                t.scope == "channel",
                t.namespace == "core",
                t.key == "chat",
                servers.c.platform == platform,
                servers.c.external_id == server_id,
                channels.c.external_id == channel_id,
            )
        )
        async with self._engine.connect() as conn:
            return bool((await conn.execute(query)).scalar_one_or_none())
