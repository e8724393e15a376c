"""Stories: people use the bot on a (fake) Discord; the real discord.py client answers.

Each story drives the fake server the way Discord would (messages, slash commands, button
presses, faults) and reads back what the bot did through the fake's REST records.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from bot.router import ATTACHMENT_ONLY_NOTE as TEXT_ONLY_NOTE
from tests.adapters_discord.conftest import WAIT_S, Bot
from tests.discord_fake import Interaction
from tests.fakes import ScriptedChatModel, script

EPHEMERAL = 1 << 6
ANSWER = "Streaming works: every word of this answer arrives as its own little delta."


class SlowChatModel(ScriptedChatModel):
    """Streams like the scripted model, with a pause between chunks (as a real LLM does)."""

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            await asyncio.sleep(0.05)
            yield chunk


def last_user_text(model: ScriptedChatModel) -> str:
    """What the model was last asked (the newest message it saw)."""
    content = model.seen[-1][-1].content
    assert isinstance(content, str)
    return content


async def reply_to(bot: Bot, asked: dict[str, Any]) -> dict[str, Any]:
    """Wait for the bot's reply to the user message ``asked``."""

    def found() -> dict[str, Any] | None:
        for message in bot.fake.world.messages.values():
            reference = message.get("message_reference") or {}
            if message["author"]["id"] == str(bot.fake.bot.id) and (
                reference.get("message_id") == asked["id"]
            ):
                return message
        return None

    return await bot.until(found)


async def answered(bot: Bot, interaction: Interaction, within: float = WAIT_S) -> dict[str, Any]:
    """Wait until the interaction's original response is no longer "thinking"."""
    return await bot.until(
        lambda: (
            interaction.original is not None
            and (interaction.original.get("content") or interaction.original.get("components"))
            and interaction.original
        ),
        within,
    )


@pytest.mark.parametrize("model", [SlowChatModel(messages=script(ANSWER, repeat=True))])
async def test_a_mention_gets_a_streamed_reply_that_ends_in_the_full_answer(bot: Bot) -> None:
    asked = await bot.fake.send_message(bot.general, bot.member, "what's up?", mentions_bot=True)

    reply = await bot.until(
        lambda: next((m for m in bot.answers_in(bot.general) if m["content"] == ANSWER), None)
    )

    assert last_user_text(bot.model) == "what's up?"  # the mention is not part of the text
    assert reply["message_reference"]["message_id"] == asked["id"]
    edits = bot.fake.edits_of(reply["id"])
    assert edits, "the answer was streamed: sent early, then edited"
    times = [call.at for call in edits]
    assert all(b - a >= 0.15 for a, b in itertools.pairwise(times))
    assert len(bot.answers_in(bot.general)) == 1


async def test_plugins_list_is_deferred_then_answered(bot: Bot) -> None:
    interaction = await bot.fake.invoke_command(
        bot.guild, bot.general, bot.member, "plugins", subcommand="list"
    )

    original = await answered(bot, interaction)

    assert interaction.callback_type == 5  # deferred ("thinking…") first
    assert interaction.responses[0].path.startswith("/interactions/")
    assert "Plugins in this server:" in original["content"]
    assert "calculator" in original["content"]


async def test_a_member_without_manage_server_cannot_enable_plugins(bot: Bot) -> None:
    interaction = await bot.fake.invoke_command(
        bot.guild,
        bot.general,
        bot.member,
        "plugins",
        subcommand="enable",
        options={"name": "calculator"},
    )

    refusal = await bot.until(lambda: interaction.followups and interaction.followups[-1])

    assert "Only server admins" in refusal["content"]
    assert refusal["flags"] & EPHEMERAL
    assert not any("Only server admins" in m["content"] for m in bot.answers_in(bot.general))


async def test_disabling_a_plugin_removes_its_command_and_its_tool(bot: Bot) -> None:
    await reply_to(
        bot, await bot.fake.send_message(bot.general, bot.member, "what is 2+2?", mentions_bot=True)
    )
    assert "calculate" in bot.model.offered[-1]
    assert "calc" in bot.command_names()

    interaction = await bot.fake.invoke_command(
        bot.guild,
        bot.general,
        bot.admin,
        "plugins",
        subcommand="disable",
        options={"name": "calculator"},
    )
    done = await answered(bot, interaction)
    assert "disabled" in done["content"]
    await bot.until(lambda: "calc" not in bot.command_names())

    asked = await bot.fake.send_message(bot.general, bot.member, "and 2+2?", mentions_bot=True)
    await reply_to(bot, asked)
    assert "calculate" not in bot.model.offered[-1]
    assert "ask" in bot.command_names()  # the other plugins' commands stay


async def test_a_rate_limited_reply_is_retried_and_delivered(bot: Bot) -> None:
    path = f"/channels/{bot.general.id}/messages"
    bot.fake.fail_next("POST", path, status=429, retry_after=0.2)

    await bot.fake.send_message(bot.general, bot.member, "hello?", mentions_bot=True)

    reply = await bot.until(lambda: bot.answers_in(bot.general) and bot.answers_in(bot.general)[0])
    assert reply["content"] == "Hello from Discord."
    statuses = [call.status for call in bot.fake.calls_to("POST", path)]
    assert statuses[:2] == [429, 200]


LONG_CODE = "\n".join(f"    total = total + {i}  # step {i} of the long loop" for i in range(70))
LONG_ANSWER = f"Here is the program:\n```python\ntotal = 0\n{LONG_CODE}\nprint(total)\n```\nDone."


@pytest.mark.parametrize("model", [ScriptedChatModel(messages=script(LONG_ANSWER, repeat=True))])
async def test_a_3000_character_answer_is_split_without_breaking_the_code_block(
    bot: Bot,
) -> None:
    assert 2500 < len(LONG_ANSWER) < 4000

    await bot.fake.send_message(bot.general, bot.member, "write code", mentions_bot=True)

    def two_final_messages() -> list[str] | None:
        contents = [m["content"] for m in bot.answers_in(bot.general)]
        return contents if len(contents) == 2 and contents[1].endswith("Done.") else None

    first, second = await bot.until(two_final_messages)
    assert len(first) <= 2000 and len(second) <= 2000
    assert first.endswith("\n```")  # the block is closed at the end of the first message
    assert second.startswith("```python\n")  # and reopened, same language, in the second
    rejoined = first.removesuffix("\n```") + "\n" + second.removeprefix("```python\n")
    assert rejoined == LONG_ANSWER


async def test_a_button_press_reaches_the_plugin(bot: Bot) -> None:
    asked = await bot.fake.invoke_command(bot.guild, bot.general, bot.member, "ask")
    question = await bot.until(
        lambda: asked.original and asked.original.get("components") and asked.original
    )
    assert question["content"] == "Shall we?"
    ids = [c["custom_id"] for row in question["components"] for c in row["components"]]
    assert ids == ["poll:vote:yes", "poll:vote:no"]

    pressed = await bot.fake.press_button(question, bot.admin, "poll:vote:yes")

    answer = await answered(bot, pressed)
    assert answer["content"] == "alice voted yes"
    presses = sys.modules["tests.adapters_discord.buttons_plugin"].presses
    assert presses == [(str(bot.admin.id), "yes")]


async def test_a_message_with_only_an_attachment_gets_a_text_only_note(bot: Bot) -> None:
    await bot.fake.send_message(
        bot.general,
        bot.member,
        "",
        mentions_bot=True,
        attachments=[("cat.png", b"\x89PNG fake", "image/png")],
    )

    note = await bot.until(lambda: bot.answers_in(bot.general) and bot.answers_in(bot.general)[0])
    assert note["content"] == TEXT_ONLY_NOTE
    assert bot.model.seen == []  # the model was not asked anything


async def test_messages_not_addressed_to_the_bot_are_ignored_outside_chat_channels(
    bot: Bot,
) -> None:
    await bot.fake.send_message(bot.general, bot.member, "just chatting with people")
    await bot.fake.send_message(bot.thread, bot.member, "answer me", mentions_bot=True)

    await bot.until(lambda: bot.answers_in(bot.thread))  # threads work: the thread is the channel
    assert bot.answers_in(bot.general) == []


@pytest.mark.model
async def test_an_admin_adds_a_file_to_the_knowledge_base_with_the_slash_command(
    bot: Bot,
) -> None:
    spec = next(c for c in bot.fake.commands(bot.guild) if c["name"] == "kb")
    add = next(o for o in spec["options"] if o["name"] == "add")
    assert [o["type"] for o in add["options"] if o["name"].startswith("file")] == [11, 11, 11]

    text = b"# Parking\n\nMembers park behind the boathouse after 6 pm.\n"
    interaction = await bot.fake.invoke_command(
        bot.guild,
        bot.general,
        bot.admin,
        "kb",
        subcommand="add",
        files={"file": ("parking.md", text, "text/markdown")},
    )
    original = await answered(bot, interaction, within=90)  # loads the embedder
    assert original["content"] == "Added “parking.md”: 1 passage."

    asked = await bot.fake.invoke_command(
        bot.guild,
        bot.general,
        bot.member,
        "kb",
        subcommand="search",
        options={"query": "where to park"},
    )
    found = await answered(bot, asked)
    assert found["content"].startswith("[1] “parking.md — Parking”"), found["content"]
