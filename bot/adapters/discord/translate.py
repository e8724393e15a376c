"""discord.py objects → platform-neutral ``Origin``s and message text.

Pure functions, no I/O: who sent something and where (guild or ``dm:<user id>``; a thread
is its own channel), whether they may manage the server, and the message text with the
bot's mention removed. Nothing here decides whether the bot answers.
"""

from __future__ import annotations

import re

import discord

from bot.events import Origin

PLATFORM = "discord"
DM_SERVER_NAME = "Direct messages"


def message_origin(message: discord.Message) -> Origin:
    """The origin of a message; admins are members with Manage Server in its guild."""
    author = message.author
    is_admin = isinstance(author, discord.Member) and author.guild_permissions.manage_guild
    return _origin(
        message.guild,
        message.guild.id if message.guild else None,
        message.channel,
        author,
        is_admin,
    )


def interaction_origin(interaction: discord.Interaction) -> Origin:
    """The origin of an interaction; admin status comes from the member's real permissions
    in that channel as Discord resolved them (``interaction.permissions``)."""
    guild_id = interaction.guild_id
    is_admin = guild_id is not None and interaction.permissions.manage_guild
    return _origin(interaction.guild, guild_id, interaction.channel, interaction.user, is_admin)


def server_origin(guild: discord.Guild, bot: discord.abc.User) -> Origin:
    """An origin that names a guild itself (the bot, in a pseudo-channel named after it).

    Used to learn a guild's server key for command syncs and channel settings without
    creating rows for users who never talked to the bot.
    """
    return Origin(
        platform=PLATFORM,
        server_id=str(guild.id),
        channel_id=str(guild.id),
        user_id=str(bot.id),
        user_name=bot.name,
        server_name=guild.name,
        channel_name="(server)",
    )


def channel_origin(message: discord.Message, bot: discord.abc.User) -> Origin:
    """The origin of the bot itself in a message's channel (for channel settings)."""
    origin = message_origin(message)
    return Origin(
        platform=PLATFORM,
        server_id=origin.server_id,
        channel_id=origin.channel_id,
        user_id=str(bot.id),
        user_name=bot.name,
        server_name=origin.server_name,
        channel_name=origin.channel_name,
    )


def strip_mention(content: str, bot_id: int) -> str:
    """The text of a message without the bot's mentions (``<@id>`` or ``<@!id>``)."""
    return re.sub(rf"<@!?{bot_id}>", " ", content).strip()


def _origin(
    guild: discord.Guild | None,
    guild_id: int | None,
    channel: object,
    user: discord.abc.User,
    is_admin: bool,
) -> Origin:
    if guild_id is None:
        server_id, server_name = f"dm:{user.id}", DM_SERVER_NAME
    else:
        server_id, server_name = str(guild_id), guild.name if guild else ""
    channel_id = getattr(channel, "id", None)
    return Origin(
        platform=PLATFORM,
        server_id=server_id,
        channel_id=str(channel_id) if channel_id is not None else server_id,
        user_id=str(user.id),
        user_name=user.display_name,
        server_name=server_name,
        channel_name=getattr(channel, "name", None) or ("dm" if guild_id is None else ""),
        is_admin=is_admin,
    )
