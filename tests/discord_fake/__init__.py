"""A fake Discord on 127.0.0.1 that the real discord.py client talks to.

One aiohttp server plays both halves of Discord: the REST API under
``http://127.0.0.1:PORT/api/v10`` and the gateway at ``ws://127.0.0.1:PORT/gateway``
(JSON text frames, never compressed). Tests build a world, point discord.py at it, inject
what users do and read back what the bot did. It never reaches beyond loopback and every
wait is bounded.

Usage::

    async with FakeDiscord() as fake:                      # or: await fake.start() / stop()
        guild = fake.add_guild("Lab")
        general = guild.add_channel("general")
        alice = guild.add_member("alice", admin=True)      # has the MANAGE_GUILD role
        with discord_pointed_at(fake):                     # Route.BASE + DEFAULT_GATEWAY
            client = discord.Client(intents=intents, guild_ready_timeout=0.05)
            task = asyncio.create_task(client.start(fake.token))
            ...                                            # wait for on_ready
            await fake.send_message(general, alice, "hi", mentions_bot=True)
            call = await fake.wait_for_call("POST", "/channels/*/messages")
            assert fake.bot_messages_in(general)[0]["content"] == "hello alice"
            await client.close()
            await task

Pointing discord.py at it: ``discord.http.Route.BASE = fake.api_base`` (class attribute:
REST, webhooks and interaction callbacks all use it) and, for a plain ``Client``,
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)`` — a
plain client never asks ``GET /gateway/bot``; ``AutoShardedClient`` without
``shard_count`` does, and gets ``fake.gateway_url``. ``discord_pointed_at`` does both
and restores them.

Cheat sheet (``FakeDiscord``; paths are globs over the path after ``/api/v10``):

* world: ``token``, ``bot``, ``application_id``, ``add_guild(name) -> Guild``,
  ``guild.add_channel(name)``, ``guild.add_thread(parent, name)``,
  ``guild.add_member(name, admin=False) -> Member``, ``add_user(name)``,
  ``await add_role(guild, name, permissions, members=[...]) -> Role`` (permission bits in
  ``models``: ``MANAGE_MESSAGES``, ``MODERATE_MEMBERS``…), ``dm_channel(user)``,
  ``set_shards(n)``;
* inject: ``send_message(channel, author, content, mentions_bot=, reply_to=,
  attachments=[(name, bytes[, type])], sticker=) -> dict``,
  ``invoke_command(guild|None, channel, member|user, name, options={}, subcommand=)
  -> Interaction``, ``press_button(message, member, custom_id) -> Interaction``,
  ``remove_guild(guild)``, ``disconnect_gateway(code=4000, reconnect_op=False)``;
* faults: ``fail_next(method, pattern, status=429, retry_after=0.3, times=1)``,
  ``forbid(channel)``, ``set_ack_timeout(seconds)``; content over 2,000 characters is
  400/50035 and an empty message 400/50006 without asking; deleting someone else's
  message without MANAGE_MESSAGES (or in a DM), or a timeout without MODERATE_MEMBERS (or
  of an administrator) is 403, a timeout over 28 days 400/50035, an unknown message,
  channel or member 404;
* read: ``calls``, ``calls_to(method, pattern)``, ``wait_for_call(...)``,
  ``messages_in(channel)``, ``bot_messages_in(channel)``, ``message(id)``,
  ``edits_of(message_id)``, ``deletes_in(channel)``, ``timeouts_of(member)`` (and
  ``member.communication_disabled_until``), each call's audit-log ``call.reason``,
  ``command_syncs(guild|None)``, ``commands(guild|None)``,
  ``interaction_responses(interaction)`` (also ``interaction.original`` /
  ``.followups`` / ``.callback_type``), ``identify_count()``, ``resume_count()``,
  ``wait_for_identify()``, ``wait_for_resume()``, ``gateway.sessions[i].events(name)``.
"""

from .models import Channel, Guild, Member, Role, User
from .records import Call, Interaction, UploadedFile
from .routing import discord_pointed_at
from .server import FakeDiscord

__all__ = [
    "Call",
    "Channel",
    "FakeDiscord",
    "Guild",
    "Interaction",
    "Member",
    "Role",
    "UploadedFile",
    "User",
    "discord_pointed_at",
]
