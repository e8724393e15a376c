"""Stories of things going wrong: no permission, a dropped gateway, a stale menu, no token."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli import main
from tests.adapters_discord.conftest import Bot
from tests.adapters_discord.test_discord_stories import ANSWER, EPHEMERAL, SlowChatModel
from tests.fakes import script


async def test_without_permission_to_post_the_bot_says_so_by_dm(bot: Bot) -> None:
    bot.fake.forbid(bot.general)

    await bot.fake.send_message(bot.general, bot.member, "hello?", mentions_bot=True)

    dm = bot.fake.dm_channel(bot.member.user)
    note = await bot.until(lambda: bot.answers_in(dm) and bot.answers_in(dm)[0])
    assert "may not post in #general" in note["content"]
    assert bot.answers_in(bot.general) == []


@pytest.mark.parametrize("model", [SlowChatModel(messages=script(ANSWER, repeat=True))])
async def test_a_gateway_drop_does_not_interrupt_a_reply_being_written(bot: Bot) -> None:
    await bot.fake.send_message(bot.general, bot.member, "tell me", mentions_bot=True)
    await bot.until(lambda: bot.answers_in(bot.general))  # the reply has started

    await bot.fake.disconnect_gateway()

    await bot.until(lambda: bot.answers_in(bot.general)[0]["content"] == ANSWER)
    await bot.fake.wait_for_resume()


async def test_a_command_missing_from_the_menu_gets_an_ephemeral_note(bot: Bot) -> None:
    interaction = await bot.fake.invoke_command(bot.guild, bot.general, bot.member, "gone")

    note = await bot.until(lambda: interaction.original)

    assert "not available here any more" in note["content"]
    assert note["flags"] & EPHEMERAL


@pytest.mark.parametrize("model", [SlowChatModel(messages=script(ANSWER, repeat=True))])
async def test_leaving_a_guild_drops_its_pending_reply_and_its_commands(bot: Bot) -> None:
    client = bot.adapter.client
    assert client.user is not None
    guild = client.get_guild(bot.guild.id)
    assert guild is not None
    server_pk = await bot.app.services.storage.server_key("discord", str(guild.id))
    await bot.fake.send_message(bot.general, bot.member, "tell me", mentions_bot=True)
    reply = await bot.until(lambda: bot.answers_in(bot.general) and bot.answers_in(bot.general)[0])
    syncs = len(bot.fake.command_syncs(bot.guild))

    await bot.fake.remove_guild(bot.guild)
    await eventually(lambda: client.get_guild(bot.guild.id) is None)
    await bot.app.plugins.set_enabled(server_pk, "calculator", False)
    await asyncio.sleep(ANSWER.count(" ") * 0.05)  # as long as the whole answer would take

    assert bot.fake.message(reply["id"])["content"] != ANSWER  # type: ignore[index]
    assert len(bot.fake.command_syncs(bot.guild)) == syncs
    assert bot.adapter.tree.get_commands(guild=guild) == []


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``check()`` holds, for state that no REST call announces."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - discord.py's own state: nothing to await
            await asyncio.sleep(0.01)


def test_atelier_run_without_a_token_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ATELIER_DISCORD__TOKEN", raising=False)
    config = tmp_path / "config.toml"
    config.write_text("")

    code = main(["--config", str(config), "--data-dir", str(tmp_path), "run"])

    assert code == 2
    assert "ATELIER_DISCORD__TOKEN" in capsys.readouterr().err


async def test_a_storage_error_still_answers_the_deferred_interaction(bot: Bot) -> None:
    database = bot.app.services.settings.data_dir / "atelier.db"
    with sqlite3.connect(database) as conn:  # the database breaks under the running bot
        conn.execute("DROP TABLE conversations")
    newcomer = bot.guild.add_member("newcomer")  # not yet known: the core must ask storage

    interaction = await bot.fake.invoke_command(
        bot.guild, bot.general, newcomer, "plugins", subcommand="list"
    )

    answer = await bot.until(lambda: interaction.followups and interaction.followups[-1])
    assert interaction.callback_type == 5  # deferred ("thinking…") first
    assert re.search(r"\(error id [0-9a-f]{8}\)", answer["content"]), answer
    assert "conversations" not in answer["content"]  # no SQL in replies
    assert answer["flags"] & EPHEMERAL
