"""The console's stories, told in an in-memory chat room: the adapter port is enough.

Every story is "this arrives in the room → the bot sends this". The room's adapter
(``tests/chatroom/adapter.py``) knows the core only through ``core.adapter``,
``core.events``, ``app.router`` and ``app.menus``, and renders replies with the streaming
renderer all adapters share (``bot.render``): streamed text posted once then edited,
progress placeholders, long answers split (the rest as a file). The App behind it is real
(SQLite in a temp dir, the built-in plugins) and only its chat model is scripted.
"""

from __future__ import annotations

from pathlib import Path

from bot.app import App
from bot.render import REST_FILENAME
from bot.router import ATTACHMENT_ONLY_NOTE
from core.adapter import DELETE, EDITS, FILES, POST, Actions, Adapter
from core.events import (
    Button,
    Buttons,
    Error,
    File,
    Image,
    MessageEvent,
    Origin,
    Progress,
    Text,
    TextDelta,
)
from tests.chatroom.adapter import BOT, PLATFORM, ChatRoom, ChatRoomAdapter
from tests.chatroom.conftest import ANSWER
from tests.fakes import PacedChatModel, ScriptedChatModel, script, tool_call

COMMANDS_HERE = "/calc, /channel, /forget, /help, /imagine, /kb, /mcp, /plugins, /prefs, /prompt"
COMMANDS_BUT_CALC = COMMANDS_HERE.removeprefix("/calc, ")


# ---- who is answered ---------------------------------------------------------------


async def test_a_direct_message_is_answered_with_the_models_text(room: ChatRoom) -> None:
    assert await room.say("ann", "general", "hello", dm=True) == [ANSWER]


async def test_a_channel_message_that_does_not_mention_the_bot_is_ignored(
    room: ChatRoom, model: ScriptedChatModel
) -> None:
    assert await room.say("ann", "general", "hello everyone") == []
    assert model.seen == []  # not even asked


async def test_a_mention_is_answered_in_its_channel(room: ChatRoom) -> None:
    assert await room.say("ann", "general", "hello", mention=True) == [ANSWER]
    assert [(m.channel, m.author, m.text) for m in room.messages] == [
        ("general", "ann", "hello"),
        ("general", BOT, ANSWER),
    ]


async def test_a_reply_to_the_bot_is_answered_without_a_mention(
    room: ChatRoom, model: ScriptedChatModel
) -> None:
    model.messages = script("Paris.", "About two million people.")
    assert await room.say("ann", "general", "capital of France?", mention=True) == ["Paris."]

    answer = await room.say("ann", "general", "how many live there?", reply_to_bot=True)

    assert answer == ["About two million people."]
    assert "capital of France?" in str(model.seen[1])  # the reply continues the conversation


async def test_after_chat_on_every_message_in_that_channel_is_answered_and_only_there(
    room: ChatRoom,
) -> None:
    assert await room.say("ann", "general", "/channel chat on") == [
        "error: Only server admins may use /channel chat."
    ]
    assert await room.say("boss", "general", "/channel chat on", admin=True) == [
        "I will answer every message in this channel."
    ]

    assert await room.say("ann", "general", "anyone here?") == [ANSWER]
    assert await room.say("ann", "random", "anyone here?") == []
    assert await room.say("ann", "general", "anyone here?", server="s2") == []

    assert await room.say("boss", "general", "/channel chat off", admin=True) == [
        "In this channel I answer only when mentioned or replied to."
    ]
    assert await room.say("ann", "general", "still there?") == []


# ---- commands ----------------------------------------------------------------------


async def test_plugins_list_lists_the_plugins(room: ChatRoom) -> None:
    said = await room.say("ann", "general", "/plugins list")  # two messages: 500 chars each

    lines = "\n".join(said).splitlines()
    assert lines[0] == "Plugins in this server:"
    assert [line.split()[:3] for line in lines[1:]] == [
        ["admin", "on", "(required)"],
        ["calculator", "on", "(default)"],
        ["code", "off", "(default)"],
        ["imagine", "on", "(default)"],
        ["knowledge", "on", "(default)"],
        ["mcp", "on", "(default)"],
        ["moderation", "off", "(default)"],
    ]


async def test_an_unknown_command_answers_with_the_commands_there_are(room: ChatRoom) -> None:
    assert await room.say("ann", "general", "/nosuchcommand") == [
        f"error: Unknown command /nosuchcommand. Commands here: {COMMANDS_HERE}"
    ]
    assert ", ".join(room.menus["s1"]) == COMMANDS_HERE  # the menu the room shows agrees


async def test_a_command_is_answered_without_a_mention(room: ChatRoom) -> None:
    assert await room.say("ann", "general", "/calc (2 + 3) * 4") == ["(2 + 3) * 4 = 20"]


async def test_only_an_admin_may_disable_a_plugin_and_only_that_servers_menu_changes(
    room: ChatRoom,
) -> None:
    assert "/calc" in room.menus["s1"] and "/calc" in room.menus["s2"]

    assert await room.say("ann", "general", "/plugins disable calculator") == [
        "error: Only server admins may use /plugins disable."
    ]
    assert "/calc" in room.menus["s1"]

    assert await room.say("boss", "general", "/plugins disable calculator", admin=True) == [
        "Plugin calculator is now disabled in this server."
    ]
    assert ", ".join(room.menus["s1"]) == COMMANDS_BUT_CALC
    assert "/calc" in room.menus["s2"]  # another server keeps it

    assert await room.say("ann", "general", "/calc 2+3") == [
        "error: /calc belongs to the calculator plugin, which is disabled in this server. "
        f"Commands here: {COMMANDS_BUT_CALC}"
    ]
    assert await room.say("ann", "general", "/calc 2+3", server="s2") == ["2+3 = 5"]


# ---- files, tools, long answers ----------------------------------------------------


async def test_a_file_alone_that_mentions_the_bot_gets_the_text_only_note(
    room: ChatRoom, model: ScriptedChatModel
) -> None:
    cat = ("cat.png", b"\x89PNG not really")

    assert await room.say("ann", "general", "", mention=True, files=[cat]) == [ATTACHMENT_ONLY_NOTE]
    assert model.seen == []  # the model was not asked


async def test_a_file_alone_in_a_chat_channel_is_left_to_the_people(room: ChatRoom) -> None:
    await room.say("boss", "general", "/channel chat on", admin=True)

    assert await room.say("ann", "general", "", files=[("cat.png", b"meow")]) == []


async def test_the_agent_calls_the_calculator_and_answers(
    room: ChatRoom, model: ScriptedChatModel
) -> None:
    model.messages = script(tool_call("calculate", expression="2+3"), "2 + 3 is 5.")

    assert await room.say("ann", "general", "what is 2+3?", mention=True) == ["2 + 3 is 5."]
    assert "calculate" in model.offered[0]
    assert model.seen[1][-1].content == "2+3 = 5"  # what the tool told the model


async def test_a_long_answer_arrives_in_messages_within_the_rooms_limit(
    room: ChatRoom, adapter: ChatRoomAdapter, model: ScriptedChatModel
) -> None:
    long_answer = " ".join(f"word{i}" for i in range(200))  # about 1,500 characters
    model.messages = script(long_answer)

    sent = await room.say("ann", "general", "tell me everything", mention=True)

    assert len(sent) == 4  # 3 nearly full messages and the end
    assert all(len(text) <= adapter.limits.message_chars for text in sent)
    assert all(text.endswith(" ") for text in sent[:-1])  # cut between words, none broken
    assert "".join(sent) == long_answer  # nothing lost, nothing added


async def test_an_answer_longer_than_five_messages_ends_with_the_rest_as_a_file(
    room: ChatRoom, adapter: ChatRoomAdapter, model: ScriptedChatModel
) -> None:
    long_answer = " ".join(f"word{i}" for i in range(1000))  # about 7,900 characters
    model.messages = script(long_answer)

    sent = await room.say("ann", "general", "tell me more than everything", mention=True)

    *shown, note = sent
    assert len(sent) == adapter.limits.max_chunks
    assert all(len(text) <= adapter.limits.message_chars for text in shown)
    assert all(text.endswith(" ") for text in shown)  # cut between words
    carrier = room.messages[-1]
    assert (carrier.author, carrier.text, carrier.files) == (BOT, note, (REST_FILENAME,))
    rest = (await room.download(carrier.id, REST_FILENAME)).decode()
    assert "".join(shown) + rest == long_answer  # the messages and the file hold it all
    assert note == f"📎 The rest of this answer ({len(rest):,} characters) is in reply.txt."


# ---- streaming and progress --------------------------------------------------------


async def test_a_streamed_answer_is_posted_once_then_edited_until_it_is_whole(
    room: ChatRoom, model: PacedChatModel
) -> None:
    answer = "one two three four five six seven eight"
    model.messages = script(answer)
    model.pause = 0.03  # words trickle in, slower than the room's edit interval

    assert await room.say("ann", "general", "count to eight", mention=True) == [answer]

    [message] = [m for m in room.messages if m.author == BOT]
    writes = [(kind, text) for kind, said, text in room.writes if said == message.id]
    edits = room.edits[message.id]
    assert edits >= 1  # streamed: shown early, then edited as the words came
    assert [kind for kind, _ in writes] == ["post"] + ["edit"] * edits  # posted once
    assert writes[0][1] != answer and all(answer.startswith(text) for _, text in writes)
    assert writes[-1][1] == answer


async def test_progress_shows_in_a_placeholder_that_the_result_replaces(
    room: ChatRoom, echo: App
) -> None:
    assert await room.say("ann", "general", "/slow 0.05") == ["slept 0.05 [echo]"]

    [message] = [m for m in room.messages if m.author == BOT]
    assert [(kind, text) for kind, said, text in room.writes if said == message.id] == [
        ("post", "⏳ sleeping"),
        ("edit", "slept 0.05 [echo]"),
    ]


# ---- the port itself ---------------------------------------------------------------


async def test_the_adapter_and_its_actions_are_the_ports_shapes(
    adapter: ChatRoomAdapter,
) -> None:
    port: Adapter = adapter  # checked by mypy: the Protocols are satisfied structurally
    actions: Actions = adapter.actions
    assert port.name == PLATFORM
    assert port.capabilities == actions.capabilities == {DELETE, EDITS, POST, FILES}


async def test_the_actions_delete_and_post_in_the_room(
    room: ChatRoom, adapter: ChatRoomAdapter
) -> None:
    await room.say("ann", "general", "buy cheap pills")
    spam = room.messages[-1]
    where = Origin(PLATFORM, "s1", "general", "ann")

    await adapter.actions.delete_message(where, spam.id)
    await adapter.actions.post(where, "mod-log", [Text("Deleted a message from ann.")])

    assert room.find(spam.id) is None
    assert [(m.channel, m.author, m.text) for m in room.messages] == [
        ("mod-log", BOT, "Deleted a message from ann.")
    ]


async def test_a_file_is_fetched_from_the_room_only_when_read(
    room: ChatRoom, adapter: ChatRoomAdapter
) -> None:
    await room.say("ann", "general", "look", files=[("notes.txt", b"milk, eggs")])
    said = room.messages[-1]

    event = adapter.event(said)

    assert isinstance(event, MessageEvent)
    [notes] = event.attachments
    assert (notes.filename, notes.content_type, notes.size) == ("notes.txt", "text/plain", 10)
    room.uploads[(said.id, "notes.txt")] = b"milk, eggs, tea"  # fetched now, not before
    assert await notes.read() == b"milk, eggs, tea"


async def test_every_kind_of_reply_part_becomes_room_messages(
    room: ChatRoom, adapter: ChatRoomAdapter, tmp_path: Path
) -> None:
    picture = tmp_path / "img.png"
    picture.write_bytes(b"\x89PNG a cat")
    where = Origin(PLATFORM, "s1", "general", "ann")

    await adapter.actions.post(
        where,
        "log",
        [
            Progress("drawing", 0.5),
            TextDelta("Here "),
            TextDelta("you are."),
            Text("Here you are."),
            Image(picture, "a cat"),
            File(tmp_path / "notes.txt"),  # gone before it could be sent
            Buttons((Button("Again", "imagine:again:1"), Button("Upscale", "imagine:up:1"))),
            Error("quota used up"),
        ],
    )

    # The text took over the progress placeholder; buttons join the reply's last text.
    assert [(m.text, m.files, m.buttons) for m in room.messages] == [
        ("Here you are.", (), ("Again", "Upscale")),
        ("a cat", ("img.png",), ()),
        ("📎 notes.txt could not be attached (the file is missing).", (), ()),
        ("error: quota used up", (), ()),
    ]
    assert room.writes[0][2] == "⏳ drawing [█████░░░░░] 50%"
    assert await room.download(room.messages[1].id, "img.png") == b"\x89PNG a cat"

    room.messages.clear()
    await adapter.actions.post(where, "log", [TextDelta("half "), TextDelta("an answer")])
    assert [m.text for m in room.messages] == ["half an answer"]  # a cut-off stream keeps it

    room.messages.clear()
    await adapter.actions.post(
        where,
        "log",
        [Progress("drawing"), Image(picture, ""), Buttons((Button("Again", "imagine:again:2"),))],
    )
    # A picture fills the placeholder; its buttons follow in a message of their own.
    assert [(m.text, m.files, m.buttons) for m in room.messages] == [
        ("", ("img.png",), ()),
        ("", (), ("Again",)),
    ]


async def test_a_stopped_adapter_no_longer_hears_menu_changes(
    app: App, room: ChatRoom, adapter: ChatRoomAdapter
) -> None:
    await adapter.stop()
    await adapter.wait_closed()
    other = ChatRoomAdapter(app, ChatRoom("s1"))  # the same servers, served anew
    await other.start()
    try:
        await other.room.say("boss", "general", "/plugins disable calculator", admin=True)
    finally:
        await other.stop()

    assert "/calc" not in other.room.menus["s1"]
    assert "/calc" in room.menus["s1"]  # the stopped adapter's room was left alone
