"""Binding options: an option's ``max_length`` holds on every platform, errors stay short.

Discord's menus refuse overlong text, but a typed option can also arrive from a platform
without menus (the console, a text command line), so ``bind`` checks the same limit for
both; and an error quotes only the start of a bad value, never a huge input back.
"""

from __future__ import annotations

import pytest

from bot.commands import bind, tokenize
from core.errors import CommandError
from core.plugin import Command, Option, Plugin
from plugins.admin import plugin as admin


def prompt_set() -> Command:
    return admin.commands["prompt"].subcommands["set"]


@pytest.mark.parametrize("length", [4001, 50_000])
def test_an_overlong_typed_option_is_refused_naming_the_option(length: int) -> None:
    with pytest.raises(CommandError) as refused:
        bind(prompt_set(), "prompt set", [], {"text": "x" * length})

    assert refused.value.user_message == f"option text: {length} characters; at most 4000"


def test_an_overlong_text_command_line_is_refused_the_same_way() -> None:
    tokens = tokenize("be brief " * 500)  # 4,499 characters once the words are joined

    with pytest.raises(CommandError, match=r"^option text: 4499 characters; at most 4000$"):
        bind(prompt_set(), "prompt set", tokens, {})


def test_text_at_the_limit_is_accepted() -> None:
    assert bind(prompt_set(), "prompt set", [], {"text": "x" * 4000}) == {"text": "x" * 4000}


def test_every_free_text_option_of_the_admin_plugin_has_a_max_length() -> None:
    commands = [c for root in admin.commands.values() for c in [root, *root.subcommands.values()]]

    free = [o for c in commands for o in c.options if o.type == "string" and not o.choices]

    assert free and all(option.max_length is not None for option in free)


def _numbers() -> Command:
    plugin = Plugin("t", "Options (tests)")

    @plugin.command(
        "pick",
        "Pick",
        Option("count", type="integer"),
        Option("mode", choices=("on", "off"), required=False),
        Option("flag", type="boolean", required=False),
    )
    async def pick(ctx: object, count: int, mode: str | None, flag: bool | None) -> str:
        """Unused."""
        return ""

    return plugin.commands["pick"]


@pytest.mark.parametrize(
    "given",
    [{"count": "9" * 50_000}, {"count": 1, "mode": "m" * 50_000}, {"count": 1, "flag": "f" * 9000}],
)
def test_an_error_quotes_only_the_start_of_a_huge_bad_value(given: dict[str, object]) -> None:
    with pytest.raises(CommandError) as refused:
        bind(_numbers(), "pick", [], given)

    assert len(refused.value.user_message) < 200
    assert "…" in refused.value.user_message


def test_an_unknown_huge_option_name_or_argument_is_quoted_short() -> None:
    for line in ["--" + "z" * 9000 + " 1", "1 " + "extra " * 2000]:
        with pytest.raises(CommandError) as refused:
            bind(_numbers(), "pick", tokenize(line), {})

        assert len(refused.value.user_message) < 300
