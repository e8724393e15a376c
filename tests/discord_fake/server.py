"""``FakeDiscord``: one aiohttp server on 127.0.0.1 with the fake REST API and gateway.

It is the test-facing façade: build the world (guilds, channels, members), inject what
users do (messages, slash commands, button presses, a guild leaving), inject faults, and
read back what the bot did. It never opens a socket beyond loopback and never sleeps
unbounded: every ``wait_*`` helper takes a timeout.
"""

from __future__ import annotations

import asyncio
import fnmatch
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import messages as msgs
from .gateway import IDENTIFY, RESUME, Gateway
from .models import (
    EVERYONE_PERMISSIONS,
    SEND_MESSAGES,
    Channel,
    Guild,
    Member,
    Role,
    User,
    World,
)
from .records import Call, Interaction, UploadedFile
from .rest import API_PREFIX, Fault, RestApi

if TYPE_CHECKING:
    from types import TracebackType

AttachmentSpec = tuple[str, bytes] | tuple[str, bytes, str]
MESSAGE_COMPONENT, CHAT_INPUT, SUB_COMMAND, STRING_OPTION = 3, 1, 1, 3
ATTACHMENT_OPTION = 11


class FakeDiscord:
    """A fake Discord (REST + gateway) for one bot. See the package docstring for usage."""

    def __init__(
        self,
        *,
        token: str = "fake-token",
        bot_name: str = "Atelier",
        shards: int = 1,
        heartbeat_interval_ms: int = 45_000,
    ) -> None:
        self.token = token
        self.world = World(bot_name)
        self._port = 0
        self.gateway = Gateway(
            self.world,
            token=token,
            heartbeat_interval_ms=heartbeat_interval_ms,
            resume_url=lambda: self.gateway_url,
        )
        self.rest = RestApi(
            self.world, self.gateway, token=token, shards=shards, base_url=lambda: self.base_url
        )
        self._runner: web.AppRunner | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> FakeDiscord:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_get("/gateway", self.gateway.handle)
        self.rest.add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Close every gateway socket and the server."""
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (attachment URLs live under it)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` must be: ``http://127.0.0.1:PORT/api/v10``."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """``ws://127.0.0.1:PORT/gateway`` (also what ``GET /gateway/bot`` answers)."""
        return f"ws://127.0.0.1:{self._port}/gateway"

    # --- building the world -------------------------------------------------------------

    @property
    def bot(self) -> User:
        """The bot user; its id is also the application id."""
        return self.world.bot

    @property
    def application_id(self) -> int:
        """The application id (= bot user id)."""
        return self.world.application_id

    def add_guild(self, name: str) -> Guild:
        """A guild with ``@everyone``, an ``Admin`` role (MANAGE_GUILD) and the bot."""
        return self.world.add_guild(name)

    def add_user(self, name: str) -> User:
        """A user in no guild (e.g. to DM the bot)."""
        return self.world.add_user(name)

    def dm_channel(self, user: User) -> Channel:
        """The DM channel between the bot and ``user``."""
        return self.world.dm_channel(user)

    async def add_role(
        self, guild: Guild, name: str, permissions: int, *, members: Iterable[Member] = ()
    ) -> Role:
        """A new role given to ``members`` (``guild.bot_member`` grants the bot permissions
        such as ``MANAGE_MESSAGES``); connected clients get GUILD_ROLE_CREATE. Members'
        messages and interactions carry it from now on."""
        role = guild.add_role(name, permissions, members=members)
        payload = {"guild_id": str(guild.id), "role": role.to_payload()}
        await self.gateway.dispatch("GUILD_ROLE_CREATE", payload, guild_id=guild.id)
        return role

    def set_shards(self, count: int) -> None:
        """What ``GET /gateway/bot`` recommends as the shard count."""
        self.rest.shards = count

    # --- injecting what users do --------------------------------------------------------

    async def send_message(
        self,
        channel: Channel,
        author: Member | User,
        content: str = "",
        *,
        mentions_bot: bool = False,
        reply_to: dict[str, Any] | None = None,
        attachments: Iterable[AttachmentSpec] = (),
        sticker: bool = False,
    ) -> dict[str, Any]:
        """A user posts in ``channel``: store it and dispatch MESSAGE_CREATE.

        ``mentions_bot`` prefixes ``<@bot>`` (unless present) and lists the bot in
        ``mentions``; ``attachments`` are ``(filename, bytes[, content_type])`` served by
        the fake CDN; ``sticker`` adds one sticker item. Returns the message payload.
        """
        member = author if isinstance(author, Member) else None
        user = author.user if isinstance(author, Member) else author
        if mentions_bot and self.bot.mention not in content:
            content = f"{self.bot.mention} {content}".rstrip()
        uploads = [self._upload(i, spec) for i, spec in enumerate(attachments)]
        stored = [
            msgs.attachment_payload(self.world, self.base_url, channel.id, u, self.rest.cdn)
            for u in uploads
        ]
        extra = (
            {
                "sticker_items": [
                    {"id": str(self.world.ids.next()), "name": "wave", "format_type": 1}
                ]
            }
            if sticker
            else {}
        )
        message = msgs.new_message(
            self.world,
            channel,
            user,
            content=content,
            member=member,
            attachments=stored,
            reply_to=reply_to,
            extra=extra,
        )
        await self.rest.dispatch_message("MESSAGE_CREATE", message)
        return message

    async def invoke_command(
        self,
        guild: Guild | None,
        channel: Channel,
        member: Member | User,
        name: str,
        *,
        options: dict[str, Any] | None = None,
        subcommand: str | None = None,
        files: dict[str, AttachmentSpec] | None = None,
    ) -> Interaction:
        """A user runs the slash command ``/name [subcommand] options…``.

        Options are typed from their Python values (str 3, bool 5, int 4, float 10);
        ``files`` fill attachment options (type 11) with files served by the fake CDN,
        listed in the interaction's ``resolved.attachments`` as Discord does.
        Dispatches INTERACTION_CREATE type 2; returns the record whose ``responses``,
        ``original`` and ``followups`` fill as the bot answers.
        """
        opts = [_option(k, v) for k, v in (options or {}).items()]
        resolved: dict[str, Any] = {}
        for index, (key, spec) in enumerate((files or {}).items()):
            upload = self._upload(index, spec)
            payload = msgs.attachment_payload(
                self.world, self.base_url, channel.id, upload, self.rest.cdn
            )
            resolved[payload["id"]] = payload
            opts.append({"name": key, "type": ATTACHMENT_OPTION, "value": payload["id"]})
        if subcommand is not None:
            opts = [{"name": subcommand, "type": SUB_COMMAND, "options": opts}]
        command = next(
            (c for c in self.commands(guild) + self.commands(None) if c["name"] == name), None
        )
        data = {
            "id": command["id"] if command else str(self.world.ids.next()),
            "name": name,
            "type": CHAT_INPUT,
            "options": opts,
        }
        if resolved:
            data["resolved"] = {"attachments": resolved}
        if guild is not None:
            data["guild_id"] = str(guild.id)
        return await self._interact(2, guild, channel, member, data)

    async def press_button(
        self, message: dict[str, Any], member: Member | User, custom_id: str
    ) -> Interaction:
        """A user clicks the button ``custom_id`` on ``message``: INTERACTION_CREATE type 3."""
        channel = self.world.channels[int(message["channel_id"])]
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interact(
            MESSAGE_COMPONENT, channel.guild, channel, member, data, message=message
        )

    async def remove_guild(self, guild: Guild) -> None:
        """The bot leaves (is removed from) ``guild``: GUILD_DELETE."""
        self.world.guilds.remove(guild)
        await self.gateway.dispatch(
            "GUILD_DELETE", {"id": str(guild.id), "unavailable": False}, guild_id=guild.id
        )

    async def disconnect_gateway(self, code: int = 4000, *, reconnect_op: bool = False) -> None:
        """Drop every gateway socket (sessions stay resumable); optionally send op 7 first."""
        await self.gateway.disconnect(code, reconnect_op=reconnect_op)

    async def _interact(
        self,
        kind: int,
        guild: Guild | None,
        channel: Channel,
        author: Member | User,
        data: dict[str, Any],
        message: dict[str, Any] | None = None,
    ) -> Interaction:
        user = author.user if isinstance(author, Member) else author
        record = Interaction(
            self.world.ids.next(),
            secrets.token_urlsafe(24),
            kind,
            {},
            channel,
            user,
            author if isinstance(author, Member) else None,
            message,
        )
        payload: dict[str, Any] = {
            "id": str(record.id),
            "application_id": str(self.application_id),
            "type": kind,
            "token": record.token,
            "version": 1,
            "data": data,
            "channel": channel.to_payload(),
            "channel_id": str(channel.id),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
            "authorizing_integration_owners": {},
            "context": 0 if guild else 1,
            "app_permissions": str(self._app_permissions(channel)),
        }
        if guild is not None:
            assert record.member is not None, "guild interactions need a Member"
            payload.update(
                guild_id=str(guild.id),
                guild_locale="en-US",
                guild={"id": str(guild.id), "locale": "en-US", "features": []},
                member=record.member.to_payload(permissions=True),
            )
        else:
            payload["user"] = user.to_payload()
        if message is not None:
            payload["message"] = message
        record.payload = payload
        self.rest.interactions[record.id] = record
        await self.gateway.dispatch(
            "INTERACTION_CREATE", payload, guild_id=guild.id if guild else None
        )
        return record

    def _app_permissions(self, channel: Channel) -> int:
        perms = channel.guild.bot_member.permissions if channel.guild else EVERYONE_PERMISSIONS
        return perms & ~SEND_MESSAGES if channel.id in self.rest.forbidden else perms

    def _upload(self, index: int, spec: AttachmentSpec) -> UploadedFile:
        content_type = spec[2] if len(spec) == 3 else "application/octet-stream"
        return UploadedFile(f"files[{index}]", spec[0], content_type, spec[1])

    # --- faults -------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        *,
        status: int = 429,
        retry_after: float = 0.3,
        times: int = 1,
        is_global: bool = False,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` (or ``"*"``) and the glob
        ``path_pattern`` (path after ``/api/v10``, e.g. ``/channels/*/messages``) with
        ``status``: a 429 carries ``retry_after`` and discord.py's headers; 5xx likewise."""
        self.rest.faults.append(
            Fault(method.upper(), path_pattern, status, retry_after, times, is_global)
        )

    def forbid(self, channel: Channel, forbidden: bool = True) -> None:
        """Posts and typing in ``channel`` answer 403 (50013 Missing Permissions)."""
        (self.rest.forbidden.add if forbidden else self.rest.forbidden.discard)(channel.id)

    def set_ack_timeout(self, seconds: float | None) -> None:
        """Refuse interaction callbacks later than ``seconds`` (Discord: 3 s). Default off."""
        self.rest.ack_timeout = seconds

    # --- reading back -------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every REST call, in arrival order (faulted ones included, with their status)."""
        return self.rest.calls

    def calls_to(self, method: str, path_pattern: str) -> list[Call]:
        """Calls matching ``method`` (or ``"*"``) and the glob ``path_pattern``."""
        return [
            c
            for c in self.calls
            if method.upper() in (c.method, "*") and fnmatch.fnmatchcase(c.path, path_pattern)
        ]

    async def wait_for_call(
        self, method: str, path_pattern: str, *, count: int = 1, within: float = 5.0
    ) -> Call:
        """Wait until ``count`` matching calls arrived; return the last one."""
        async with asyncio.timeout(within), self.rest.changed:
            await self.rest.changed.wait_for(
                lambda: len(self.calls_to(method, path_pattern)) >= count
            )
        return self.calls_to(method, path_pattern)[count - 1]

    def messages_in(self, channel: Channel) -> list[dict[str, Any]]:
        """The messages now in ``channel`` (users' and the bot's), oldest first."""
        return list(self.world.messages_in(channel.id))

    def bot_messages_in(self, channel: Channel) -> list[dict[str, Any]]:
        """Only the bot's messages in ``channel``."""
        return [m for m in self.messages_in(channel) if m["author"]["id"] == str(self.bot.id)]

    def message(self, message_id: int | str) -> dict[str, Any] | None:
        """The current state of a message (``None`` once deleted)."""
        return self.world.messages.get(int(message_id))

    def deletes_in(self, channel: Channel) -> list[Call]:
        """DELETE calls for messages of ``channel`` (refused ones too, with their status)."""
        return self.calls_to("DELETE", f"/channels/{channel.id}/messages/*")

    def timeouts_of(self, member: Member) -> list[Call]:
        """PATCH calls that edited ``member`` (timeouts: ``json["communication_disabled_until"]``,
        ``reason``); the member's current timeout is ``member.communication_disabled_until``."""
        return self.calls_to("PATCH", f"/guilds/{member.guild.id}/members/{member.id}")

    def edits_of(self, message_id: int | str) -> list[Call]:
        """PATCH calls that edited the message (channel or webhook route)."""
        return self.calls_to("PATCH", f"*/messages/{message_id}")

    def command_syncs(self, guild: Guild | None = None) -> list[Call]:
        """``PUT …/commands`` calls for ``guild`` (``None``: the global commands)."""
        scope = f"/guilds/{guild.id}/commands" if guild else f"{self.application_id}/commands"
        return self.calls_to("PUT", f"/applications/*{scope}")

    def commands(self, guild: Guild | None = None) -> list[dict[str, Any]]:
        """The commands now registered for ``guild`` (``None``: global)."""
        return self.rest.commands.get(guild.id if guild else None, [])

    def interaction_responses(self, interaction: Interaction) -> list[Call]:
        """Callback, ``@original`` and follow-up calls made for ``interaction``."""
        return interaction.responses

    def identify_count(self) -> int:
        """How many IDENTIFY payloads clients sent."""
        return len(self.gateway.ops(IDENTIFY))

    def resume_count(self) -> int:
        """How many RESUME payloads clients sent."""
        return len(self.gateway.ops(RESUME))

    async def wait_for_identify(self, count: int = 1, within: float = 5.0) -> None:
        """Wait until clients have identified ``count`` times."""
        await self.gateway.wait_for_op(IDENTIFY, count, within)

    async def wait_for_resume(self, count: int = 1, within: float = 5.0) -> None:
        """Wait until clients have resumed ``count`` times."""
        await self.gateway.wait_for_op(RESUME, count, within)


def _option(name: str, value: Any) -> dict[str, Any]:
    kind = (
        5
        if isinstance(value, bool)
        else 4
        if isinstance(value, int)
        else (10 if isinstance(value, float) else STRING_OPTION)
    )
    return {"name": name, "type": kind, "value": value}
