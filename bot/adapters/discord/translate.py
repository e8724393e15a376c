"""discord.py objects → platform-neutral ``Origin``s and message text.

Pure functions, no I/O: who sent something and where (guild or ``dm:<user id>``; a thread
is its own channel), whether they may manage the server and which roles they hold, the
message text with the bot's mention removed, the facts of how a message reached the bot,
and its attachments (downloaded lazily). Nothing here decides whether the bot answers.
"""

from __future__ import annotations

import re

import discord

from core.events import Addressing, Attachment, Origin

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


def addressing(message: discord.Message, bot_id: int, listed: set[str]) -> Addressing:
    """The facts of how ``message`` reached the bot (the core decides whether to answer)."""
    reference = message.reference
    resolved = reference.resolved if reference is not None else None
    return Addressing(
        direct=message.guild is None,
        mentions_bot=any(user.id == bot_id for user in message.mentions),
        replies_to_bot=isinstance(resolved, discord.Message) and resolved.author.id == bot_id,
        listed_channel=str(message.channel.id) in listed,
    )


def attachment_of(item: discord.Attachment) -> Attachment:
    """A platform-neutral attachment whose bytes are downloaded only when read."""
    return Attachment(
        item.filename,
        item.content_type or "application/octet-stream",
        item.size,
        fetch=item.read,
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
        roles=member_roles(user),
    )


def member_roles(user: discord.abc.User) -> tuple[str, ...]:
    """A member's role ids, lowest first, without ``@everyone`` (everyone has it); a
    user outside a guild has none."""
    if not isinstance(user, discord.Member):
        return ()
    return tuple(str(role.id) for role in user.roles if not role.is_default())
