"""The fake Discord, driven by a real ``discord.Client``: what happens on Discord happens here."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json

import aiohttp
import discord
import pytest

from tests.discord_fake import FakeDiscord, discord_pointed_at
from tests.discord_fake.conftest import Lab, RawClient
from tests.discord_fake.models import MANAGE_MESSAGES, MODERATE_MEMBERS


async def test_client_logs_in_and_sees_the_guild(lab: Lab, raw: RawClient) -> None:
    guild = raw.client.get_guild(lab.guild.id)
    assert guild is not None and guild.name == "Atelier Lab"
    assert [c.name for c in guild.text_channels] == ["general"]
    assert [t.name for t in guild.threads] == ["ideas"]
    admin, member = guild.get_member(lab.admin.id), guild.get_member(lab.member.id)
    assert admin is not None and admin.guild_permissions.manage_guild
    assert member is not None and not member.guild_permissions.manage_guild
    assert raw.client.user is not None and raw.client.user.id == lab.fake.application_id
    assert lab.fake.calls_to("GET", "/users/@me")[0].status == 200


async def test_injected_message_arrives_and_the_reply_and_edit_are_recorded(
    lab: Lab, raw: RawClient
) -> None:
    sent = await lab.fake.send_message(lab.general, lab.member, "hello", mentions_bot=True)

    message = await raw.next_message()
    assert message.id == int(sent["id"]) and message.content.endswith("hello")
    assert raw.client.user in message.mentions
    reply = await message.reply("hi bob")
    await reply.edit(content="hi bob!")

    stored = lab.fake.bot_messages_in(lab.general)
    assert [m["content"] for m in stored] == ["hi bob!"]
    assert stored[0]["message_reference"]["message_id"] == sent["id"]
    assert [c.json["content"] for c in lab.fake.edits_of(reply.id)] == ["hi bob!"]
    echoed = await raw.next_message(from_bot=True)
    assert echoed.id == reply.id


async def test_rate_limited_send_is_retried_and_delivered_once(lab: Lab, raw: RawClient) -> None:
    lab.fake.fail_next("POST", "/channels/*/messages", status=429, retry_after=0.2)

    channel = raw.client.get_channel(lab.general.id)
    assert isinstance(channel, discord.TextChannel)
    await channel.send("after the limit")

    statuses = [c.status for c in lab.fake.calls_to("POST", "/channels/*/messages")]
    assert statuses == [429, 200]
    assert [m["content"] for m in lab.fake.bot_messages_in(lab.general)] == ["after the limit"]


async def test_discord_refuses_long_content_and_forbidden_channels(
    lab: Lab, raw: RawClient
) -> None:
    channel = raw.client.get_channel(lab.general.id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send("x" * 2001)
    assert too_long.value.code == 50035
    await channel.send("x" * 2000)

    lab.fake.forbid(lab.general)
    with pytest.raises(discord.Forbidden) as forbidden:
        await channel.send("no")
    assert forbidden.value.code == 50013
    assert len(lab.fake.bot_messages_in(lab.general)) == 1


async def test_uploads_are_recorded_and_user_attachments_can_be_downloaded(
    lab: Lab, raw: RawClient
) -> None:
    await lab.fake.send_message(
        lab.thread, lab.member, "look", attachments=[("cat.png", b"\x89PNG fake", "image/png")]
    )
    message = await raw.next_message()
    assert message.channel.id == lab.thread.id
    assert await message.attachments[0].read() == b"\x89PNG fake"

    await message.channel.send("a file", file=discord.File(io.BytesIO(b"abc" * 100), "out.txt"))

    call = lab.fake.calls_to("POST", f"/channels/{lab.thread.id}/messages")[-1]
    assert call.json["content"] == "a file"
    upload = call.files[0]
    assert (upload.filename, upload.size, upload.data) == ("out.txt", 300, b"abc" * 100)
    assert lab.fake.bot_messages_in(lab.thread)[0]["attachments"][0]["size"] == 300


async def test_a_dropped_gateway_is_resumed_and_nothing_is_missed(lab: Lab, raw: RawClient) -> None:
    await lab.fake.disconnect_gateway(code=4000)
    await lab.fake.send_message(lab.general, lab.admin, "while you were away")

    await raw.next("resumed")
    message = await raw.next_message()
    assert message.content == "while you were away"
    assert (lab.fake.identify_count(), lab.fake.resume_count()) == (1, 1)


async def test_slash_command_defer_and_followup_are_recorded(lab: Lab, raw: RawClient) -> None:
    interaction = await lab.fake.invoke_command(
        lab.guild, lab.general, lab.admin, "plugins", subcommand="list", options={"all": True}
    )

    received: discord.Interaction = await raw.next("interaction")
    assert dict(received.data or {})["name"] == "plugins"
    assert received.permissions.manage_guild and received.app_permissions.send_messages
    await received.response.defer()
    await received.followup.send("two plugins")

    callback, followup = lab.fake.interaction_responses(interaction)
    assert callback.json == {"type": 5}
    assert followup.query.get("wait") in ("1", "true")
    assert followup.json["content"] == "two plugins"
    assert interaction.original is not None
    assert interaction.original["content"] == "two plugins"
    assert interaction.original["flags"] == 0


async def test_a_button_press_can_update_its_message(lab: Lab, raw: RawClient) -> None:
    channel = raw.client.get_channel(lab.general.id)
    assert isinstance(channel, discord.TextChannel)
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="Retry", custom_id="retry"))
    sent = await channel.send("failed", view=view)
    view.stop()

    record = await lab.fake.press_button(lab.fake.message(sent.id) or {}, lab.member, "retry")
    pressed: discord.Interaction = await raw.next("interaction")
    assert dict(pressed.data or {})["custom_id"] == "retry"
    await pressed.response.edit_message(content="retrying…", view=None)

    assert record.callback_type == 7
    assert (lab.fake.message(sent.id) or {})["content"] == "retrying…"


async def test_command_sync_is_stored_and_answered_with_ids(lab: Lab, raw: RawClient) -> None:
    tree = discord.app_commands.CommandTree(raw.client)
    guild = discord.Object(lab.guild.id)

    @tree.command(name="ask", description="Ask the bot", guild=guild)
    async def ask(interaction: discord.Interaction, question: str) -> None:
        del interaction, question

    synced = await tree.sync(guild=guild)

    assert [c.name for c in synced] == ["ask"] and synced[0].id > 0
    assert len(lab.fake.command_syncs(lab.guild)) == 1
    assert lab.fake.commands(lab.guild)[0]["options"][0]["name"] == "question"


async def test_a_removed_guild_reaches_the_client(lab: Lab, raw: RawClient) -> None:
    await lab.fake.remove_guild(lab.guild)

    removed = await raw.next("guild_remove")
    assert removed.id == lab.guild.id and raw.client.get_guild(lab.guild.id) is None


async def test_a_direct_message_round_trip(lab: Lab, raw: RawClient) -> None:
    stranger = lab.fake.add_user("carol")
    await lab.fake.send_message(lab.fake.dm_channel(stranger), stranger, "psst")

    message = await raw.next_message()
    assert isinstance(message.channel, discord.DMChannel) and message.content == "psst"
    await message.channel.send("hello carol")
    assert lab.fake.bot_messages_in(lab.fake.dm_channel(stranger))[0]["content"] == "hello carol"


async def test_each_shard_gets_only_its_guilds() -> None:
    async with FakeDiscord(shards=2) as fake:
        guilds = [fake.add_guild(f"g{i}") for i in range(4)]
        async with aiohttp.ClientSession() as http:
            async with http.get(
                fake.api_base + "/gateway/bot", headers={"Authorization": f"Bot {fake.token}"}
            ) as resp:
                assert (await resp.json())["shards"] == 2
            for shard_id in (0, 1):
                created = await _guilds_seen_by_shard(http, fake, shard_id, 2)
                assert created == {g.id for g in guilds if g.shard_id(2) == shard_id}
                assert len(created) == 2


async def test_a_wrong_token_is_a_login_failure() -> None:
    async with FakeDiscord() as fake:
        with discord_pointed_at(fake):
            client = discord.Client(intents=discord.Intents.default())
            try:
                with pytest.raises(discord.LoginFailure):
                    await client.login("wrong")
            finally:
                await client.close()


async def _guilds_seen_by_shard(
    http: aiohttp.ClientSession, fake: FakeDiscord, shard_id: int, count: int
) -> set[int]:
    async with http.ws_connect(fake.gateway_url + "?v=10&encoding=json") as ws:
        assert json.loads((await ws.receive(timeout=2)).data)["op"] == 10
        await ws.send_json(
            {
                "op": 2,
                "d": {
                    "token": fake.token,
                    "intents": 0,
                    "shard": [shard_id, count],
                    "properties": {},
                },
            }
        )
        ready = json.loads((await ws.receive(timeout=2)).data)
        assert ready["t"] == "READY" and ready["d"]["shard"] == [shard_id, count]
        seen = set()
        for _ in ready["d"]["guilds"]:
            event = json.loads((await ws.receive(timeout=2)).data)
            assert event["t"] == "GUILD_CREATE"
            seen.add(int(event["d"]["id"]))
        await asyncio.sleep(0)
        return seen


async def test_a_server_error_is_retried_by_discord_py(lab: Lab, raw: RawClient) -> None:
    lab.fake.fail_next("POST", "/channels/*/typing", status=500)
    channel = raw.client.get_channel(lab.general.id)
    assert isinstance(channel, discord.TextChannel)

    await channel.typing()

    assert [c.status for c in lab.fake.calls_to("POST", "/channels/*/typing")] == [500, 204]


async def test_an_ephemeral_answer_can_be_read_and_edited(lab: Lab, raw: RawClient) -> None:
    record = await lab.fake.invoke_command(
        None, lab.fake.dm_channel(lab.member.user), lab.member.user, "help"
    )
    received: discord.Interaction = await raw.next("interaction")
    await received.response.send_message("working…", ephemeral=True)
    original = await received.original_response()
    await received.edit_original_response(content="done")

    assert original.content == "working…"
    assert record.callback_type == 4 and record.original is not None
    assert (record.original["content"], record.original["flags"]) == ("done", 64)
    assert [c.method for c in record.responses] == ["POST", "GET", "PATCH"]
    url = f"{lab.fake.api_base}/interactions/{record.id}/{record.token}/callback"
    async with aiohttp.ClientSession() as http, http.post(url, json={"type": 5}) as again:
        assert (again.status, (await again.json())["code"]) == (400, 40060)


class _ShardedClient(discord.AutoShardedClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5-second pause between shards: the fake has no identify rate limit."""


async def test_an_auto_sharded_client_follows_gateway_bot() -> None:
    async with FakeDiscord(shards=2) as fake:
        names = {fake.add_guild(f"g{i}").id: f"g{i}" for i in range(4)}
        with discord_pointed_at(fake):
            client = _ShardedClient(intents=discord.Intents.default(), guild_ready_timeout=0.05)
            ready = asyncio.Event()

            @client.event
            async def on_ready() -> None:
                ready.set()

            task = asyncio.create_task(client.start(fake.token))
            try:
                await asyncio.wait_for(ready.wait(), 5)
                assert client.shard_count == 2
                assert {g.id: g.shard_id for g in client.guilds} == {
                    gid: (gid >> 22) % 2 for gid in names
                }
            finally:
                await client.close()
                await asyncio.wait_for(task, 5)


async def test_deleting_someone_elses_message_needs_manage_messages_in_a_guild(
    lab: Lab, raw: RawClient
) -> None:
    sent = await lab.fake.send_message(lab.general, lab.member, "spam")
    channel = raw.client.get_channel(lab.general.id)
    assert isinstance(channel, discord.TextChannel)
    message = channel.get_partial_message(int(sent["id"]))

    with pytest.raises(discord.Forbidden) as refused:
        await message.delete()
    assert refused.value.code == 50013
    await lab.fake.add_role(lab.guild, "Janitor", MANAGE_MESSAGES, members=[lab.guild.bot_member])
    await message.delete()
    with pytest.raises(discord.NotFound) as gone:
        await message.delete()

    assert gone.value.code == 10008
    assert [c.status for c in lab.fake.deletes_in(lab.general)] == [403, 204, 404]
    assert lab.fake.message(sent["id"]) is None
    dm = lab.fake.dm_channel(lab.member.user)
    theirs = await lab.fake.send_message(dm, lab.member.user, "psst")
    partial = raw.client.get_partial_messageable(dm.id).get_partial_message(int(theirs["id"]))
    with pytest.raises(discord.Forbidden) as in_dm:
        await partial.delete()
    assert in_dm.value.code == 50003


async def test_a_timeout_needs_moderate_members_and_ends_within_28_days(
    lab: Lab, raw: RawClient
) -> None:
    guild = raw.client.get_guild(lab.guild.id)
    assert guild is not None
    member = await guild.fetch_member(lab.member.id)

    with pytest.raises(discord.Forbidden):
        await member.timeout(dt.timedelta(hours=1))
    await lab.fake.add_role(lab.guild, "Mod", MODERATE_MEMBERS, members=[lab.guild.bot_member])
    await member.timeout(dt.timedelta(hours=1), reason="too loud")
    with pytest.raises(discord.HTTPException) as too_long:
        await member.timeout(dt.timedelta(days=29))
    with pytest.raises(discord.NotFound) as unknown:
        await guild.fetch_member(lab.fake.add_user("stranger").id)

    assert too_long.value.status == 400 and too_long.value.code == 50035
    assert unknown.value.code == 10007
    calls = lab.fake.timeouts_of(lab.member)
    assert [c.status for c in calls] == [403, 200, 400]
    assert calls[1].reason == "too loud"
    until = dt.datetime.fromisoformat(calls[1].json["communication_disabled_until"])
    assert lab.member.communication_disabled_until == until.isoformat()
    refreshed = await guild.fetch_member(lab.member.id)
    assert refreshed.timed_out_until == until
