"""Each server's choices of MCP servers (``mcp_choices``), read through a bounded cache.

The cache is cleared for a server on every change made in this process; other processes
see a change within ``CACHE_TTL_S``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.cache import TTLCache
from plugins.mcp.tables import mcp_choices

CACHE_TTL_S = 10.0
MAX_DENIED = 512


@dataclass(frozen=True, slots=True)
class Choice:
    """One server's choice for one MCP server."""

    enabled: bool = False
    denied: frozenset[str] = frozenset()  # the MCP server's own tool names


class Choices:
    """Reads and writes ``mcp_choices``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._cache: TTLCache[int, dict[str, Choice]] = TTLCache(CACHE_TTL_S)

    async def of(self, server_pk: int) -> dict[str, Choice]:
        """The server's choices by MCP server name (absent: off, nothing denied)."""
        return await self._cache.get(server_pk, lambda: self._load(server_pk))

    async def _load(self, server_pk: int) -> dict[str, Choice]:
        query = select(mcp_choices).where(mcp_choices.c.server_id == server_pk)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {
            str(row["mcp_name"]): Choice(bool(row["enabled"]), _denied(row["denied_tools"]))
            for row in rows
        }

    async def set(self, server_pk: int, name: str, choice: Choice) -> None:
        """Store ``choice`` as the server's for MCP server ``name``."""
        denied = json.dumps(sorted(choice.denied)[:MAX_DENIED])
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(mcp_choices).where(
                    mcp_choices.c.server_id == server_pk, mcp_choices.c.mcp_name == name
                )
            )
            await conn.execute(
                mcp_choices.insert().values(
                    server_id=server_pk, mcp_name=name, enabled=choice.enabled, denied_tools=denied
                )
            )
        self._cache.invalidate(server_pk)


def _denied(raw: object) -> frozenset[str]:
    try:
        names = json.loads(str(raw))
    except ValueError:
        return frozenset()
    return (
        frozenset(n for n in names if isinstance(n, str))
        if isinstance(names, list)
        else frozenset()
    )
