"""Stories: answers too long for a few messages, and text options too long for the bot.

A reply never takes more than ``MAX_TEXT_MESSAGES`` messages: the last of them says the
rest of the text is attached, and carries it as ``reply.txt`` (in a channel and in a slash
command's response alike). Every string option of the synced slash commands carries a
``max_length``, so Discord refuses overlong text before the bot sees it.
"""

from __future__ import annotations

from typing import Any

import discord
import pytest
from discord import app_commands

from bot.adapters.discord.commands import MAX_STRING_LENGTH, build_commands
from bot.adapters.discord.sinks import MESSAGE_LIMIT
from bot.plugins import Source
from bot.render import REST_FILENAME
from core.plugin import Option, Plugin
from tests.adapters_discord.conftest import Bot
from tests.adapters_discord.longtext_plugin import essay
from tests.adapters_discord.test_discord_split import rebuilds
from tests.fakes import ScriptedChatModel, script

MAX_TEXT_MESSAGES = 5  # Limits.max_chunks on Discord
HUGE_ANSWER = essay(25_000)
STRING = 3  # Discord's option type of a string
WITHIN_S = 20.0


async def load_essay_plugin(bot: Bot) -> None:
    """Load ``tests.adapters_discord.longtext_plugin`` and wait for its slash commands."""
    manager = bot.app.plugins
    manager.sources["essay"] = Source("essay", "tests.adapters_discord.longtext_plugin")
    await manager.load("essay")
    await bot.until(lambda: "essay" in bot.command_names())


def current(bot: Bot, messages: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The stored state of ``messages`` (edits applied), skipping deleted ones."""
    found = (bot.fake.message(m["id"]) for m in messages if m is not None)
    return [m for m in found if m is not None]


def with_file_last(messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return messages if messages and messages[-1]["attachments"] else None


def attached_text(bot: Bot, message: dict[str, Any]) -> str:
    (attachment,) = message["attachments"]
    assert attachment["filename"] == REST_FILENAME
    return bot.fake.rest.cdn[int(attachment["id"])].decode()


def assert_capped_reply(bot: Bot, messages: list[dict[str, Any]], answer: str) -> None:
    """At most the cap of messages, each within Discord's limit; the rest in reply.txt."""
    assert len(messages) <= MAX_TEXT_MESSAGES
    assert all(len(message["content"]) <= MESSAGE_LIMIT for message in messages)
    *texts, last = messages
    assert last["content"].startswith("📎") and REST_FILENAME in last["content"]
    rest = attached_text(bot, last)
    assert rest and answer.endswith(rest)
    assert rebuilds([message["content"] for message in texts] + [rest], answer)


@pytest.mark.parametrize("model", [ScriptedChatModel(messages=script(HUGE_ANSWER, repeat=True))])
async def test_a_huge_answer_arrives_as_a_few_messages_and_a_text_file(bot: Bot) -> None:
    await bot.fake.send_message(bot.general, bot.member, "write a lot", mentions_bot=True)

    messages = await bot.until(lambda: with_file_last(bot.answers_in(bot.general)), WITHIN_S)

    assert_capped_reply(bot, messages, HUGE_ANSWER)


async def test_a_slash_command_with_a_huge_answer_gets_a_few_messages_and_a_text_file(
    bot: Bot,
) -> None:

    await load_essay_plugin(bot)

    interaction = await bot.fake.invoke_command(
        bot.guild, bot.general, bot.member, "essay", options={"chars": 30_000}
    )

    messages = await bot.until(
        lambda: with_file_last(current(bot, [interaction.original, *interaction.followups])),
        WITHIN_S,
    )
    assert_capped_reply(bot, messages, essay(30_000))


async def test_an_answer_that_fits_the_cap_has_no_file(bot: Bot) -> None:
    await load_essay_plugin(bot)
    answer = essay(6_000)

    interaction = await bot.fake.invoke_command(
        bot.guild, bot.general, bot.member, "essay", options={"chars": 6_000}
    )

    def all_of_it() -> list[dict[str, Any]] | None:
        messages = current(bot, [interaction.original, *interaction.followups])
        return messages if messages and messages[-1]["content"].endswith(answer[-20:]) else None

    messages = await bot.until(all_of_it)
    assert 3 <= len(messages) <= MAX_TEXT_MESSAGES
    assert not any(message["attachments"] for message in messages)
    assert rebuilds([message["content"] for message in messages], answer)


def string_options(options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every free-text option, in subcommands too (options with choices are not free)."""
    found = []
    for option in options:
        found += string_options(option.get("options") or [])
        if option["type"] == STRING and not option.get("choices"):
            found.append(option)
    return found


async def test_every_string_option_of_the_synced_commands_has_a_max_length(bot: Bot) -> None:
    await load_essay_plugin(bot)

    commands = {command["name"]: command for command in bot.fake.commands(bot.guild)}

    options = string_options([option for c in commands.values() for option in c["options"]])
    assert len(options) >= 5
    assert all(1 <= option.get("max_length", 0) <= MAX_STRING_LENGTH for option in options)
    (prompt_set,) = (sub for sub in commands["prompt"]["options"] if sub["name"] == "set")
    assert prompt_set["options"][0]["max_length"] == 4000  # the option's own


def test_a_string_option_without_its_own_max_length_gets_the_message_limit() -> None:
    plugin = Plugin("t", "Options (tests)")

    @plugin.command(
        "say",
        "Say it",
        Option("text"),
        Option("short", max_length=10),
        Option("long", max_length=10_000),
        Option("mode", choices=("a", "b")),
        Option("count", type="integer"),
    )
    async def say(ctx: Any, text: str, short: str, long: str, mode: str, count: int) -> str:
        """Unused."""
        return text

    async def invoke(*args: Any) -> None:
        """Unused."""

    (command,) = build_commands(list(plugin.commands.values()), invoke, max_text=4000)

    tree = app_commands.CommandTree(discord.Client(intents=discord.Intents.none()))
    lengths = {o["name"]: o.get("max_length") for o in command.to_dict(tree)["options"]}
    assert lengths == {
        "text": 4000,  # the message limit given
        "short": 10,  # its own
        "long": MAX_STRING_LENGTH,  # its own, cut to what Discord accepts
        "mode": None,  # choices: no free text
        "count": None,
    }
