"""Every built-in command answers hostile input as a user error, never as a plugin failure.

One bot serves all examples (started on a loop of this module's own): Hypothesis throws
random argument text at every command and subcommand, as an admin and as a member.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import App
from bot.config import Settings
from core.plugin import Command
from tests.core.conftest import say
from tests.fakes import ScriptedChatModel, script

HOSTILE = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "",
            "--",
            "--name",
            "--name --name",
            '"unclosed',
            "calculator max_length -1",
            "calculator decimals 99999999999999999999999",
            "calculator nosuch 1",
            "imagine max_steps nan",
            "admin",
            "on",
            "maybe",
            "x" * 5000,
            "\x00\u200b\u202e",
            "9**5000",
            "sqrt()",
            "round(1.5, 2.5)",
            "(" * 100,
        ]
    ),
)
BROKEN = ("plugin failed", "went wrong", "Traceback")


def _lines(commands: dict[str, Command]) -> list[str]:
    lines = []
    for name, cmd in commands.items():
        lines.append(f"/{name}")
        lines.extend(f"/{name} {sub}" for sub in cmd.subcommands)
    return sorted(lines)


@pytest.fixture(scope="module")
def bot(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[asyncio.AbstractEventLoop, App]]:
    """A started bot (imagine off: its jobs need a worker) and the loop it runs on."""
    loop = asyncio.new_event_loop()
    config = Settings(
        data_dir=Path(tmp_path_factory.mktemp("fuzz")) / "data",
        limits={"user_burst": 1_000_000, "server_burst": 1_000_000},
        plugins={"disable_entry_points": True, "enabled": {"imagine": False}},
    )
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    app = loop.run_until_complete(App.start(config, chat_model=model))
    try:
        yield loop, app
    finally:
        loop.run_until_complete(app.aclose())
        loop.close()


@pytest.mark.timeout(300)
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), admin=st.booleans())
def test_no_command_fails_on_user_input(
    bot: tuple[asyncio.AbstractEventLoop, App], data: st.DataObject, admin: bool
) -> None:
    loop, app = bot
    commands = {
        name: cmd
        for loaded in app.plugins.loaded.values()
        for name, cmd in loaded.plugin.commands.items()
    }
    line = data.draw(st.sampled_from(_lines(commands)))
    argument = data.draw(HOSTILE)
    reply = loop.run_until_complete(say(app, f"{line} {argument}", admin=admin))
    assert not any(word in reply for word in BROKEN), (line, argument, reply)
