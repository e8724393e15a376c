"""What plugins may do on Discord: delete a message, time a member out, post to a channel.

``DiscordActions`` is the adapter's ``core.adapter.Actions``, passed with every event it
routes. Each call acts on the guild of the ``Origin`` it is given and nowhere else: a
timeout needs a guild (never a DM), a post goes only to a channel of the same guild.
Posts render through the shared renderer (``bot.render``), exactly as replies do, so
their text is split and their buttons become views the same way. discord.py's errors
end here, as ``PlatformError``s with one short line of reason; this module decides
nothing about *whether* to act, which is the plugin's business.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import discord

from bot.render import Reply, WriteBudget
from core.adapter import Limits
from core.errors import PlatformError
from core.events import Origin, ReplyPart

from .sinks import ChannelSink, DiscordTarget

log = logging.getLogger(__name__)

# Discord refuses a ``communication_disabled_until`` more than 28 days ahead; a minute
# less leaves room for the clocks of this host and Discord's to disagree.
LONGEST_TIMEOUT = timedelta(days=28) - timedelta(minutes=1)
SHORTEST_TIMEOUT = timedelta(seconds=1)
_POSTABLE = (
    discord.TextChannel,
    discord.Thread,
    discord.VoiceChannel,
    discord.StageChannel,
)


class DiscordActions:
    """``core.adapter.Actions`` on one discord.py client (see the module docstring)."""

    def __init__(
        self,
        client: discord.Client,
        capabilities: frozenset[str],
        limits: Limits,
        budget: WriteBudget,
    ) -> None:
        self.capabilities = capabilities
        self._client = client
        self._limits = limits
        self._budget = budget

    async def delete_message(self, origin: Origin, message_id: str) -> None:
        """Delete message ``message_id`` in ``origin``'s channel (needs Manage Messages
        for other people's messages; in DMs Discord lets a bot delete only its own)."""
        channel = self._client.get_partial_messageable(_snowflake(origin.channel_id, "channel"))
        message = channel.get_partial_message(_snowflake(message_id, "message"))
        async with _translated("delete the message", "Manage Messages"):
            await message.delete()

    async def timeout_user(self, origin: Origin, seconds: float, reason: str) -> None:
        """Time ``origin``'s user out of its guild for ``seconds``, clamped to what Discord
        allows (1 s to 28 days); refused in direct messages."""
        guild = self._guild(origin, "time a user out")
        user_id = _snowflake(origin.user_id, "user")
        span = timeout_span(seconds)
        async with _translated("time the member out", "Moderate Members"):
            member = guild.get_member(user_id) or await guild.fetch_member(user_id)
            await member.timeout(span, reason=reason or None)
        log.info("discord: timed out %s in guild %s for %s", user_id, guild.id, span)

    async def post(self, origin: Origin, channel_id: str, parts: Sequence[ReplyPart]) -> None:
        """Post ``parts`` to channel ``channel_id`` of ``origin``'s guild, rendered as a
        reply is (text split within limits, buttons as a view); refused for a channel of
        another guild, or outside guilds."""
        guild = self._guild(origin, "post to another channel")
        channel = await self._channel(_snowflake(channel_id, "channel"))
        if channel.guild.id != guild.id:
            raise PlatformError(f"channel {channel_id} is not in the guild {origin.server_id}")
        sink = ChannelSink(channel, guild.filesize_limit)
        reply: Reply[discord.Message] = Reply(DiscordTarget(sink), self._budget, self._limits)
        async with _translated(f"post to channel {channel_id}", "Send Messages"):
            await reply.render(_stream(parts))

    def _guild(self, origin: Origin, what: str) -> discord.Guild:
        if not origin.server_id.isdigit():
            raise PlatformError(f"Discord cannot {what} in direct messages")
        guild = self._client.get_guild(int(origin.server_id))
        if guild is None:
            raise PlatformError(f"the bot is not in the guild {origin.server_id}")
        return guild

    async def _channel(
        self, channel_id: int
    ) -> discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.StageChannel:
        """A channel of a guild that can hold messages (from the cache, else asked for)."""
        channel = self._client.get_channel(channel_id)
        if channel is None:
            async with _translated(f"find channel {channel_id}", "View Channel"):
                channel = await self._client.fetch_channel(channel_id)
        if not isinstance(channel, _POSTABLE):
            raise PlatformError(f"channel {channel_id} is no text channel of a guild")
        return channel


def timeout_span(seconds: float) -> timedelta:
    """``seconds`` as a timeout Discord accepts: at least 1 s, at most 28 days."""
    if math.isnan(seconds):
        raise PlatformError("a timeout needs a number of seconds")
    span = timedelta(seconds=min(seconds, LONGEST_TIMEOUT.total_seconds()))
    return max(span, SHORTEST_TIMEOUT)


def _snowflake(value: str, what: str) -> int:
    if not value.isdigit():
        raise PlatformError(f"{value!r} is no Discord {what} id")
    return int(value)


async def _stream(parts: Sequence[ReplyPart]) -> AsyncIterator[ReplyPart]:
    for part in parts:
        yield part


@asynccontextmanager
async def _translated(action: str, permission: str) -> AsyncIterator[None]:
    """discord.py's errors in the block become ``PlatformError``s that say, in one line,
    what Discord refused and why."""
    try:
        yield
    except discord.Forbidden as exc:
        why = f"missing {permission}" if exc.code == 50013 else _reason(exc)
        raise PlatformError(f"Discord refused to {action}: {why}") from exc
    except discord.NotFound as exc:
        raise PlatformError(f"Discord could not {action}: {_reason(exc)}") from exc
    except discord.HTTPException as exc:
        raise PlatformError(f"Discord failed to {action}: {_reason(exc)}") from exc
    except OSError as exc:
        raise PlatformError(f"could not reach Discord to {action}: {exc}") from exc


def _reason(exc: discord.HTTPException) -> str:
    """Discord's own words (first line, short), or the HTTP status."""
    text = exc.text.splitlines()[0] if exc.text else ""
    return text[:120] or f"HTTP {exc.status}"
