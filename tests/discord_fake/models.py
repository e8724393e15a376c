"""The fake Discord's world: users, guilds, channels, roles, members, and what was recorded.

Everything here is plain data plus ``to_payload()`` methods that render Discord API v10
JSON shapes complete enough for discord.py to parse. Nothing here does I/O; the servers
in ``rest.py`` and ``gateway.py`` read and change this state.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

DISCORD_EPOCH_MS = 1_420_070_400_000
_EPHEMERAL = 1 << 6  # message flag (messages.EPHEMERAL)

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
MODERATE_MEMBERS = 1 << 40
ALL_PERMISSIONS = (1 << 50) - 1
EVERYONE_PERMISSIONS = (
    ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
    | SEND_MESSAGES_IN_THREADS
)

TEXT_CHANNEL, DM_CHANNEL, PUBLIC_THREAD = 0, 1, 11


def now_iso() -> str:
    """The current time as Discord writes timestamps."""
    return dt.datetime.now(dt.UTC).isoformat()


class Snowflakes:
    """Unique, increasing snowflake ids, each one millisecond after the previous.

    Guild ids come from their own run of consecutive milliseconds (before all other ids),
    so ``(guild_id >> 22) % shard_count`` cycles through the shards guild by guild.
    """

    def __init__(self) -> None:
        self._base_ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        self._counter = itertools.count()
        self._guilds = itertools.count(self._base_ms - 1_000_000)

    def next(self) -> int:
        """A new snowflake id."""
        n = next(self._counter)
        return ((self._base_ms + n) << 22) | (n & 0xFFF)

    def next_guild(self) -> int:
        """A new guild id: one shard further than the previous guild's."""
        return next(self._guilds) << 22


@dataclass
class User:
    """A Discord user (``bot=True`` for the fake's own bot user)."""

    id: int
    name: str
    bot: bool = False

    @property
    def mention(self) -> str:
        """``<@id>``, as a message mentions the user."""
        return f"<@{self.id}>"

    def to_payload(self) -> dict[str, Any]:
        """The user object."""
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }


@dataclass
class Role:
    """A guild role; the ``@everyone`` role has the guild's id."""

    id: int
    name: str
    permissions: int
    position: int = 0

    def to_payload(self) -> dict[str, Any]:
        """The role object."""
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass
class Member:
    """A user's membership of a guild."""

    user: User
    guild: Guild
    roles: list[Role] = field(default_factory=list)
    joined_at: str = field(default_factory=now_iso)
    # Set by the bot's timeouts (PATCH /guilds/{g}/members/{u}); None: not timed out.
    communication_disabled_until: str | None = None

    @property
    def id(self) -> int:
        """The user's id."""
        return self.user.id

    @property
    def permissions(self) -> int:
        """Guild-wide permissions: ``@everyone`` plus every role, all of them for admins."""
        perms = self.guild.everyone.permissions
        for role in self.roles:
            perms |= role.permissions
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    def to_payload(self, *, with_user: bool = True, permissions: bool = False) -> dict[str, Any]:
        """The guild member object (``permissions`` is added in interactions)."""
        data: dict[str, Any] = {
            "roles": [str(r.id) for r in self.roles],
            "nick": None,
            "avatar": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": self.communication_disabled_until,
        }
        if with_user:
            data["user"] = self.user.to_payload()
        if permissions:
            data["permissions"] = str(self.permissions)
        return data


@dataclass
class Channel:
    """A guild text channel, a public thread (``parent`` set) or a DM (``recipient`` set)."""

    id: int
    name: str
    type: int
    guild: Guild | None = None
    parent: Channel | None = None
    recipient: User | None = None
    position: int = 0

    @property
    def mention(self) -> str:
        """``<#id>``."""
        return f"<#{self.id}>"

    def to_payload(self) -> dict[str, Any]:
        """The channel object, shaped for its type."""
        if self.type == DM_CHANNEL:
            assert self.recipient is not None
            return {
                "id": str(self.id),
                "type": DM_CHANNEL,
                "last_message_id": None,
                "recipients": [self.recipient.to_payload()],
                "flags": 0,
            }
        assert self.guild is not None
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild.id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": str(self.parent.id) if self.parent else None,
            "flags": 0,
        }
        if self.type == PUBLIC_THREAD:
            data.update(
                owner_id=str(self.guild.world.bot.id),
                message_count=0,
                member_count=1,
                thread_metadata={
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": now_iso(),
                    "locked": False,
                },
            )
        return data


@dataclass
class Guild:
    """A guild with ``@everyone``, an admin role (MANAGE_GUILD) and the bot as a member.

    Build it with ``fake.add_guild(name)`` and grow it with ``add_channel``,
    ``add_thread`` and ``add_member``.
    """

    id: int
    name: str
    world: World
    roles: list[Role] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)

    @property
    def everyone(self) -> Role:
        """The ``@everyone`` role."""
        return self.roles[0]

    @property
    def admin_role(self) -> Role:
        """The role with MANAGE_GUILD that ``add_member(admin=True)`` gives."""
        return self.roles[1]

    @property
    def bot_member(self) -> Member:
        """The bot's own membership."""
        return self.members[0]

    @property
    def text_channels(self) -> list[Channel]:
        """Channels that are not threads."""
        return [c for c in self.channels if c.type == TEXT_CHANNEL]

    @property
    def threads(self) -> list[Channel]:
        """Public threads."""
        return [c for c in self.channels if c.type == PUBLIC_THREAD]

    def shard_id(self, shard_count: int) -> int:
        """The shard that receives this guild's events: ``(id >> 22) % shard_count``."""
        return (self.id >> 22) % shard_count

    def add_channel(self, name: str) -> Channel:
        """Add a text channel."""
        channel = Channel(
            self.world.ids.next(), name, TEXT_CHANNEL, guild=self, position=len(self.channels)
        )
        return self._remember(channel)

    def add_thread(self, parent: Channel, name: str) -> Channel:
        """Add a public thread under ``parent``."""
        channel = Channel(self.world.ids.next(), name, PUBLIC_THREAD, guild=self, parent=parent)
        return self._remember(channel)

    def add_member(self, name: str, *, admin: bool = False) -> Member:
        """Add a (new) user as a member; ``admin`` gives the MANAGE_GUILD role."""
        user = self.world.add_user(name)
        return self.add_existing_user(user, admin=admin)

    def add_existing_user(self, user: User, *, admin: bool = False) -> Member:
        """Make an existing user (e.g. one in another guild) a member here too."""
        member = Member(user, self, roles=[self.admin_role] if admin else [])
        self.members.append(member)
        return member

    def add_role(self, name: str, permissions: int, *, members: Iterable[Member] = ()) -> Role:
        """A new role (above the others) given to ``members`` (the bot's own too:
        ``guild.bot_member``). ``FakeDiscord.add_role`` also tells connected clients."""
        role = Role(self.world.ids.next(), name, permissions, position=len(self.roles))
        self.roles.append(role)
        for member in members:
            member.roles.append(role)
        return role

    def member(self, user_id: int) -> Member | None:
        """The member with that user id, if any."""
        return next((m for m in self.members if m.id == user_id), None)

    def _remember(self, channel: Channel) -> Channel:
        self.channels.append(channel)
        self.world.channels[channel.id] = channel
        return channel

    def to_payload(self) -> dict[str, Any]:
        """The full GUILD_CREATE payload."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.world.bot.id),
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "features": [],
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "vanity_url_code": None,
            "roles": [r.to_payload() for r in self.roles],
            "emojis": [],
            "stickers": [],
            "channels": [c.to_payload() for c in self.text_channels],
            "threads": [c.to_payload() for c in self.threads],
            "members": [m.to_payload() for m in self.members],
            "member_count": len(self.members),
            "large": False,
            "unavailable": False,
            "joined_at": self.bot_member.joined_at,
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "premium_subscription_count": 0,
            "max_members": 500_000,
        }


class World:
    """All state of one fake Discord: ids, the bot, users, guilds, channels, messages."""

    def __init__(self, bot_name: str = "Atelier") -> None:
        self.ids = Snowflakes()
        self.users: dict[int, User] = {}
        self.bot = self.add_user(bot_name, bot=True)
        self.guilds: list[Guild] = []
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, dict[str, Any]] = {}

    @property
    def application_id(self) -> int:
        """As for every bot today, the application id is the bot user's id."""
        return self.bot.id

    def add_user(self, name: str, *, bot: bool = False) -> User:
        """A user who belongs to no guild yet."""
        user = User(self.ids.next(), name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str) -> Guild:
        """A guild with ``@everyone``, ``Admin`` (MANAGE_GUILD) and the bot as a member."""
        guild = Guild(self.ids.next_guild(), name, self)
        guild.roles += [
            Role(guild.id, "@everyone", EVERYONE_PERMISSIONS),
            Role(self.ids.next(), "Admin", MANAGE_GUILD, position=1),
        ]
        guild.add_existing_user(self.bot)
        self.guilds.append(guild)
        return guild

    def dm_channel(self, user: User) -> Channel:
        """The DM channel between the bot and ``user`` (made on first use)."""
        for channel in self.channels.values():
            if channel.recipient is not None and channel.recipient.id == user.id:
                return channel
        channel = Channel(self.ids.next(), "", DM_CHANNEL, recipient=user)
        self.channels[channel.id] = channel
        return channel

    def guild_of(self, channel_id: int) -> Guild | None:
        """The guild a channel belongs to (``None`` for DMs and unknown ids)."""
        channel = self.channels.get(channel_id)
        return channel.guild if channel else None

    def messages_in(self, channel_id: int) -> Iterator[dict[str, Any]]:
        """Stored messages of a channel, oldest first; ephemeral ones are not part of a
        channel's history (on Discord only their recipient ever sees them)."""
        return (
            m
            for m in self.messages.values()
            if m["channel_id"] == str(channel_id) and not int(m.get("flags") or 0) & _EPHEMERAL
        )
