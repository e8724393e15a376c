"""The moderation plugin's rows: servers' lists and rules, and the moderation log.

Uses the engine the app injects (the ``database`` back end). Reads of a server's lists
and rules are cached briefly (another bot process's change shows within ``ttl_s``; this
process's own at once); the cache holds at most ``MAX_CACHED_SERVERS`` servers.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import InputRejected
from plugins.moderation.lists import MAX_TERMS, Term
from plugins.moderation.policy import Rule
from plugins.moderation.tables import EXCERPT_CHARS, mod_log, mod_rules, mod_terms
from storage.base import as_utc, translated
from storage.models import utcnow

MAX_CACHED_SERVERS = 4096


@dataclass(frozen=True, slots=True)
class ServerRules:
    """One server's block and allow lists and its own rules per category."""

    block: tuple[Term, ...] = ()
    allow: tuple[Term, ...] = ()
    rules: Mapping[str, Rule] | None = None


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One moderation decision, as logged."""

    server_pk: int
    platform: str
    channel_id: str
    message_id: str
    user_id: str
    user_name: str
    place: str
    excerpt: str
    layer: str
    category: str
    score: float
    action: str
    id: int = 0
    created_at: datetime | None = None


class ModerationStore:
    """Lists, rules and log in SQL."""

    def __init__(self, engine: AsyncEngine, *, ttl_s: float = 5.0) -> None:
        self.engine = engine
        self._ttl_s = ttl_s
        self._cache: OrderedDict[int, tuple[float, ServerRules]] = OrderedDict()

    async def server_rules(self, server_pk: int) -> ServerRules:
        """The server's lists and rules (cached)."""
        hit = self._cache.get(server_pk)
        if hit is not None and hit[0] > time.monotonic():
            self._cache.move_to_end(server_pk)
            return hit[1]
        found = await self._load(server_pk)
        self._cache[server_pk] = (time.monotonic() + self._ttl_s, found)
        self._cache.move_to_end(server_pk)
        while len(self._cache) > MAX_CACHED_SERVERS:
            self._cache.popitem(last=False)
        return found

    @translated
    async def _load(self, server_pk: int) -> ServerRules:
        async with self.engine.connect() as conn:
            terms = await conn.execute(
                select(mod_terms.c.list, mod_terms.c.pattern, mod_terms.c.is_regex)
                .where(mod_terms.c.server_id == server_pk)
                .order_by(mod_terms.c.id)
            )
            rules = await conn.execute(select(mod_rules).where(mod_rules.c.server_id == server_pk))
            lists: dict[str, list[Term]] = {"block": [], "allow": []}
            for row in terms:
                lists[row.list].append(Term(row.pattern, bool(row.is_regex)))
            own = {row.category: Rule(row.threshold, row.action) for row in rules}
        return ServerRules(tuple(lists["block"]), tuple(lists["allow"]), own)

    @translated
    async def add_term(self, server_pk: int, which: str, term: Term, by: str) -> None:
        """Add ``term`` to the server's ``which`` list ("block" or "allow").

        Raises:
            InputRejected: It is there already, or the list is full.
        """
        async with self.engine.begin() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(mod_terms)
                .where(mod_terms.c.server_id == server_pk, mod_terms.c.list == which)
            )
            if (count or 0) >= MAX_TERMS:
                raise InputRejected(f"The {which} list is full ({MAX_TERMS} entries).")
            try:
                await conn.execute(
                    mod_terms.insert().values(
                        server_id=server_pk,
                        list=which,
                        pattern=term.pattern,
                        is_regex=term.is_regex,
                        added_by_name=by[:100],
                    )
                )
            except IntegrityError as exc:
                raise InputRejected(
                    f"{term.pattern[:80]!r} is on the {which} list already."
                ) from exc
        self._cache.pop(server_pk, None)

    @translated
    async def remove_term(self, server_pk: int, which: str, pattern: str) -> bool:
        """Remove an entry (word or regex) from a list; False when it was not there."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(mod_terms).where(
                    mod_terms.c.server_id == server_pk,
                    mod_terms.c.list == which,
                    mod_terms.c.pattern == pattern,
                )
            )
        self._cache.pop(server_pk, None)
        return bool(result.rowcount)

    @translated
    async def set_rule(self, server_pk: int, category: str, rule: Rule) -> None:
        """Store the server's rule for ``category``."""
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(mod_rules).where(
                    mod_rules.c.server_id == server_pk, mod_rules.c.category == category
                )
            )
            await conn.execute(
                mod_rules.insert().values(
                    server_id=server_pk,
                    category=category,
                    threshold=rule.threshold,
                    action=rule.action,
                )
            )
        self._cache.pop(server_pk, None)

    @translated
    async def log(self, entry: LogEntry) -> int:
        """Write one decision to the log; its id."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                mod_log.insert().values(
                    server_id=entry.server_pk,
                    platform=entry.platform[:16],
                    channel_id=entry.channel_id[:64],
                    message_id=entry.message_id[:64],
                    user_id=entry.user_id[:64],
                    user_name=entry.user_name[:100],
                    place=entry.place,
                    excerpt=entry.excerpt[:EXCERPT_CHARS],
                    layer=entry.layer,
                    category=entry.category,
                    score=entry.score,
                    action=entry.action,
                )
            )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    @translated
    async def entry(self, server_pk: int, entry_id: int) -> LogEntry | None:
        """One log entry of the server, or None."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(mod_log).where(
                        mod_log.c.server_id == server_pk, mod_log.c.id == entry_id
                    )
                )
            ).first()
        return _entry(row) if row is not None else None

    @translated
    async def page(self, server_pk: int, *, before: int | None, size: int) -> list[LogEntry]:
        """The server's newest entries (older than id ``before``), newest first."""
        query = select(mod_log).where(mod_log.c.server_id == server_pk)
        if before is not None:
            query = query.where(mod_log.c.id < before)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(mod_log.c.id.desc()).limit(size))
            return [_entry(row) for row in rows]

    @translated
    async def prune(self, *, older_than_days: int, keep_per_server: int) -> int:
        """Drop entries past retention, and each server's beyond its newest
        ``keep_per_server``; how many went."""
        cutoff = utcnow() - timedelta(days=older_than_days)
        async with self.engine.begin() as conn:
            gone = (
                await conn.execute(delete(mod_log).where(mod_log.c.created_at < cutoff))
            ).rowcount
            servers = await conn.execute(
                select(mod_log.c.server_id)
                .group_by(mod_log.c.server_id)
                .having(func.count() > keep_per_server)
            )
            for (server_pk,) in servers.all():
                oldest_kept = await conn.scalar(
                    select(mod_log.c.id)
                    .where(mod_log.c.server_id == server_pk)
                    .order_by(mod_log.c.id.desc())
                    .offset(keep_per_server - 1)
                    .limit(1)
                )
                result = await conn.execute(
                    delete(mod_log).where(
                        mod_log.c.server_id == server_pk, mod_log.c.id < oldest_kept
                    )
                )
                gone += result.rowcount
        return int(gone or 0)


# LogEntry fields named as their columns.
_SAME_NAMES = "platform channel_id message_id user_id user_name place excerpt layer".split()
_SAME_NAMES += ["category", "score", "action", "id"]


def _entry(row: object) -> LogEntry:
    data = row._mapping  # type: ignore[attr-defined]
    return LogEntry(
        server_pk=data["server_id"],
        created_at=as_utc(data["created_at"]),
        **{name: data[name] for name in _SAME_NAMES},
    )
