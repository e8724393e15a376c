"""The Discord adapter: a discord.py client whose events become router events.

``DiscordAdapter`` connects (sharded when configured), answers DMs, mentions, replies to
its own messages and every message in chat channels, turns slash commands and button
presses into ``CommandEvent``s and ``ButtonEvent``s, and renders each reply stream in a
task of its own (never tied to the gateway connection, which discord.py resumes by
itself). It keeps each guild's slash commands in sync with the plugins enabled there,
and passes plugins ``DiscordActions`` (delete, time out, post) with every event. It only
translates: what an event means and who may do what is the core's business.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord import app_commands

from bot.config import DiscordSettings
from bot.render import Reply, WriteBudget
from core.adapter import BUTTONS, DELETE, EDITS, FILES, POST, TIMEOUT, Limits
from core.errors import AtelierError, ConfigError
from core.events import ButtonEvent, CommandEvent, Event, MessageEvent, ReplyPart
from core.plugin import Command

from .actions import DiscordActions
from .commands import GuildSync
from .sinks import MESSAGE_LIMIT, ChannelSink, DiscordTarget, InteractionSink, Sink
from .translate import (
    PLATFORM,
    addressing,
    attachment_of,
    interaction_origin,
    message_origin,
    strip_mention,
)
from .views import pressed_custom_id

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

_DM_UPLOAD_LIMIT = discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES


def point_discord_at(settings: DiscordSettings) -> tuple[str, yarl.URL]:
    """Point discord.py at ``api_base`` and ``gateway_url``; return the previous endpoints.

    discord.py keeps them in class attributes shared by the whole process
    (``discord.http.Route.BASE``, used for REST, webhooks and interaction callbacks, and
    ``DiscordWebSocket.DEFAULT_GATEWAY``). Overriding them is meant for proxies and tests.
    """
    previous = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    discord.http.Route.BASE = settings.api_base.rstrip("/")
    if settings.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)
    return previous


def make_client(settings: DiscordSettings, *, guild_ready_timeout: float = 2.0) -> discord.Client:
    """A client with the intents the bot needs (no members intent); sharded if configured."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True
    options: dict[str, Any] = {
        "intents": intents,
        "guild_ready_timeout": guild_ready_timeout,
        # Model output must never ping @everyone, roles or people.
        "allowed_mentions": discord.AllowedMentions.none(),
    }
    if settings.shard_ids is not None and settings.shard_count is None:
        raise ConfigError("discord.shard_ids needs discord.shard_count")
    if settings.shard_count is None:
        return discord.Client(**options)
    if settings.shard_ids is not None:
        options["shard_ids"] = settings.shard_ids
    return discord.AutoShardedClient(shard_count=settings.shard_count, **options)


class _Tree(app_commands.CommandTree[discord.Client]):
    """A command tree that reports failed or stale invocations to the adapter."""

    def __init__(self, client: discord.Client, adapter: DiscordAdapter) -> None:
        super().__init__(client, fallback_to_global=False)
        self._adapter = adapter

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        """Stale menus and failures get an ephemeral answer instead of silence."""
        await self._adapter.command_failed(interaction, error)


class DiscordAdapter:
    """Serves one App on Discord (a ``core.adapter.Adapter``): ``await start()``,
    ``wait_until_ready()``, ``stop()``."""

    name = PLATFORM
    capabilities = frozenset({BUTTONS, EDITS, FILES, DELETE, TIMEOUT, POST})

    def __init__(
        self, app: App, settings: DiscordSettings, *, guild_ready_timeout: float = 2.0
    ) -> None:
        if settings.token is None or not settings.token.get_secret_value():
            raise ConfigError("no Discord token: set ATELIER_DISCORD__TOKEN")
        self.app = app
        self.settings = settings
        self.client = make_client(settings, guild_ready_timeout=guild_ready_timeout)
        self.tree = _Tree(self.client, self)
        self.sync = GuildSync(
            self.tree,
            self._guild_specs,
            self._invoke,
            settings.sync_debounce_s,
            max_text=app.services.settings.limits.max_message_chars,
        )
        self.limits = Limits(
            message_chars=MESSAGE_LIMIT,
            edit_interval_s=settings.edit_interval_s,
            file_bytes=_DM_UPLOAD_LIMIT,
            button_data_bytes=100,
        )
        self._budget = WriteBudget()
        self._actions = DiscordActions(self.client, self.capabilities, self.limits, self._budget)
        self._chat_channels = set(settings.chat_channels)
        self._work: dict[int | None, set[asyncio.Task[None]]] = {}  # per guild (None: DMs)
        self._ready = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._endpoints: tuple[str, yarl.URL] | None = None
        self._closed = False
        for handler in (
            self.on_ready,
            self.on_guild_available,
            self.on_guild_join,
            self.on_guild_remove,
            self.on_message,
            self.on_interaction,
        ):
            self.client.event(handler)

    # ---- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Log in and connect in the background (see ``wait_until_ready``)."""
        assert self.settings.token is not None
        self._endpoints = point_discord_at(self.settings)
        self.app.menus.subscribe(PLATFORM, self._commands_changed)
        token = self.settings.token.get_secret_value()
        self._runner = asyncio.create_task(self.client.start(token), name="discord-client")

    async def wait_until_ready(self) -> None:
        """Wait until connected; raise the connection's error if it failed instead."""
        assert self._runner is not None, "start() first"
        ready = asyncio.create_task(self._ready.wait())
        try:
            await asyncio.wait({ready, self._runner}, return_when="FIRST_COMPLETED")
        finally:
            ready.cancel()
        if not self._ready.is_set():
            await self.wait_closed()
            raise AtelierError("the Discord client stopped before it was ready")

    async def wait_closed(self) -> None:
        """Wait until the client stops; its start-up errors become ``AtelierError``s."""
        assert self._runner is not None, "start() first"
        try:
            await self._runner
        except discord.LoginFailure as exc:
            raise ConfigError("Discord refused the token in ATELIER_DISCORD__TOKEN") from exc
        except discord.PrivilegedIntentsRequired as exc:
            raise ConfigError(
                "Discord refused the Message Content intent: enable it for the bot in the "
                "Discord developer portal"
            ) from exc
        except (discord.DiscordException, OSError) as exc:
            raise AtelierError(f"Discord connection failed: {exc}") from exc

    async def stop(self) -> None:
        """The adapter port's name for ``close``."""
        await self.close()

    async def close(self) -> None:
        """Drop pending replies and syncs, disconnect, and restore discord.py's endpoints."""
        if self._closed:
            return
        self._closed = True
        self.app.menus.unsubscribe(PLATFORM, self._commands_changed)
        tasks = [task for bucket in self._work.values() for task in bucket]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.sync.close()
        await self.client.close()
        if self._runner is not None:
            if not self._ready.is_set():
                # Closed while connecting: discord.py's AutoShardedClient would retry a shard
                # it is still launching (waiting out its IDENTIFY spacing) forever.
                self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        if self._endpoints is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = (
                self._endpoints
            )

    # ---- guilds ------------------------------------------------------------------

    async def on_ready(self) -> None:
        """Connected (again, after a new session): note it."""
        log.info("discord: connected as %s in %d guilds", self.client.user, len(self.client.guilds))
        self._ready.set()

    async def on_guild_available(self, guild: discord.Guild) -> None:
        """A guild streamed in (at start-up or after an outage): sync its commands."""
        self.sync.schedule(guild.id)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        """The bot was added to a guild: sync its commands."""
        self.sync.schedule(guild.id)

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """The bot left a guild: drop its pending replies and syncs."""
        self.sync.forget(guild.id)
        for task in self._work.pop(guild.id, set()):
            task.cancel()
        log.info("discord: left guild %s; dropped its pending work", guild.id)

    async def _guild_specs(self, guild_id: int) -> list[Command] | None:
        guild = self.client.get_guild(guild_id)
        if guild is None:
            return None
        return await self.app.menus.commands_for(PLATFORM, str(guild.id), guild.name)

    async def _commands_changed(self, server_id: str | None) -> None:
        """The core's menu change event: resync that guild (every guild after a reload)."""
        if self._closed:
            return
        if server_id is None:
            for guild in self.client.guilds:
                self.sync.schedule(guild.id)
        elif server_id.isdigit():  # "dm:<user>" servers have no menu of their own
            self.sync.schedule(int(server_id))

    # ---- messages ----------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """Answer a message addressed to the bot (or any in a chat channel)."""
        bot = self.client.user
        if bot is None or message.author.bot or self._closed:
            return
        event = MessageEvent(
            message_origin(message),
            strip_mention(message.content, bot.id),
            message_id=str(message.id),
            attachments=tuple(attachment_of(item) for item in message.attachments),
            addressing=addressing(message, bot.id, self._chat_channels),
        )
        # The core decides who is answered (and which unanswered messages plugins still
        # read: moderation); asking first spares a task per stray message.
        router = self.app.router
        if await router.answers(event) or await router.watches(event):
            self._spawn(message.guild, self._reply(message, self._route(event)))

    async def _reply(self, message: discord.Message, parts: AsyncIterator[ReplyPart]) -> None:
        limit = message.guild.filesize_limit if message.guild else _DM_UPLOAD_LIMIT
        sink = ChannelSink(message.channel, limit, answering=message)
        try:
            await self._render(parts, sink)
        except discord.Forbidden as exc:
            where = getattr(message.channel, "name", None) or message.channel.id
            log.warning("discord: may not reply in #%s (guild %s): %s", where, message.guild, exc)
            await self._tell_by_dm(message.author, f"I may not post in #{where}, so I answer here.")

    async def _tell_by_dm(self, user: discord.User | discord.Member, text: str) -> None:
        try:
            await user.send(text)
        except discord.HTTPException as exc:
            log.warning("discord: could not DM %s either: %s", user.id, exc)

    # ---- interactions ------------------------------------------------------------

    async def _invoke(
        self,
        interaction: discord.Interaction,
        name: str,
        subcommand: str | None,
        options: dict[str, Any],
    ) -> None:
        """A slash command (from the tree): defer at once, then route and render."""
        if not await _defer(interaction):
            return
        origin = interaction_origin(interaction)
        files = tuple(
            attachment_of(value)
            for value in options.values()
            if isinstance(value, discord.Attachment)
        )
        options = {k: v for k, v in options.items() if not isinstance(v, discord.Attachment)}
        event = CommandEvent(
            origin, name, subcommand=subcommand, options=options, attachments=files
        )
        self._spawn(interaction.guild, self._answer(interaction, event))

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Button presses (commands go through the tree): defer, route, render."""
        custom_id = pressed_custom_id(interaction)
        if custom_id is None or self._closed or not await _defer(interaction):
            return
        event = ButtonEvent(interaction_origin(interaction), custom_id)
        self._spawn(interaction.guild, self._answer(interaction, event))

    async def _answer(self, interaction: discord.Interaction, event: Event) -> None:
        guild = interaction.guild
        sink = InteractionSink(interaction, guild.filesize_limit if guild else _DM_UPLOAD_LIMIT)
        try:
            await self._render(self._route(event), sink)
        except discord.HTTPException as exc:
            log.warning("discord: could not answer interaction %s: %s", interaction.id, exc)
            await _ephemeral(interaction, "I could not post the whole answer here.")

    async def command_failed(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """A stale menu entry, or a failure in discord.py's command handling."""
        stale = (app_commands.CommandNotFound, app_commands.CommandSignatureMismatch)
        if isinstance(error, stale):
            text = "This command is not available here any more; the menu is being updated."
            if interaction.guild_id is not None:
                self.sync.schedule(interaction.guild_id)
        else:
            log.error("discord: command failed", exc_info=error)
            text = "Something went wrong on my side; the problem was logged."
        await _ephemeral(interaction, text)

    # ---- shared ------------------------------------------------------------------

    def _route(self, event: Event) -> AsyncIterator[ReplyPart]:
        return self.app.router.handle(event, actions=self._actions)

    async def _render(self, parts: AsyncIterator[ReplyPart], sink: Sink) -> None:
        """Feed every part to a ``Reply``; the router's stream is closed in any case (it
        holds the conversation's turn lock until then)."""
        reply: Reply[discord.Message] = Reply(DiscordTarget(sink), self._budget, self.limits)
        await reply.render(parts)

    def _spawn(self, guild: discord.Guild | None, work: Coroutine[Any, Any, None]) -> None:
        """Run a reply in its own task, remembered per guild so leaving can drop it."""
        key = guild.id if guild else None
        task = asyncio.create_task(self._guarded(work))
        bucket = self._work.setdefault(key, set())
        bucket.add(task)
        task.add_done_callback(bucket.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except discord.HTTPException as exc:
            log.warning("discord: reply failed: %s", exc)
        except Exception:
            log.exception("discord: reply failed")


async def _defer(interaction: discord.Interaction) -> bool:
    """Acknowledge at once (Discord allows 3 s); False if the interaction is gone."""
    try:
        await interaction.response.defer(thinking=True)
    except discord.HTTPException as exc:
        log.warning("discord: could not acknowledge interaction %s: %s", interaction.id, exc)
        return False
    return True


async def _ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Tell only the user who interacted (as the response, or as a follow-up)."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("discord: could not tell interaction %s: %s", interaction.id, exc)
