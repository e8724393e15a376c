"""Reply text → Telegram HTML, by properties over hostile text: every reply parses with
only Telegram's tags, balanced, and reads back as the text the model wrote."""

from __future__ import annotations

import html
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.telegram.translate import command_of, to_html
from bot.text import split_message

ALLOWED = {"pre", "code"}
PIECES = [*"<>&\"'`\n ab{}/\\;=", "```", "```py\n", "\u200b", "\u202e", "é"]
HOSTILE = st.lists(st.sampled_from(PIECES), max_size=400).map("".join)


class _Reader(HTMLParser):
    """Checks tags are allowed and balanced; collects the text Telegram would show."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.text: list[str] = []
        self.bad: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED:
            self.bad.append(tag)
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.bad.append(f"/{tag}")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _read(markup: str) -> _Reader:
    reader = _Reader()
    reader.feed(markup)
    reader.close()
    return reader


@settings(max_examples=300, deadline=None)
@given(HOSTILE)
def test_any_reply_is_valid_telegram_html(text: str) -> None:
    reader = _read(to_html(text))

    assert reader.bad == [] and reader.open == []
    shown = "".join(reader.text)
    assert _subsequence(shown, text)  # nothing invented; only code markers dropped
    assert [shown.count(c) for c in "<>&\"'"] == [text.count(c) for c in "<>&\"'"]


def _subsequence(short: str, long: str) -> bool:
    rest = iter(long)
    return all(char in rest for char in short)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300).filter(lambda t: "`" not in t))
def test_text_without_code_reads_back_exactly(text: str) -> None:
    markup = to_html(text)

    assert html.unescape(markup) == text
    assert "<" not in markup.replace("&lt;", "")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*"ab <&>`\n", "```", "```py\n"]), max_size=3000).map("".join))
def test_every_split_chunk_is_valid_html_on_its_own(text: str) -> None:
    for chunk in split_message(text, 4096 // 8):
        reader = _read(to_html(chunk))
        assert reader.bad == [] and reader.open == []


def test_code_blocks_become_pre_and_inline_code_becomes_code() -> None:
    text = "Use `a < b` here:\n```python\nif a < b & c:\n    print('<ok>')\n```\ndone"

    assert to_html(text) == (
        "Use <code>a &lt; b</code> here:\n"
        '<pre><code class="language-python">if a &lt; b &amp; c:\n'
        "    print('&lt;ok&gt;')</code></pre>\ndone"
    )


def test_commands_for_this_bot_are_taken_and_for_another_ignored() -> None:
    assert command_of("/imagine a cat --steps 4", "atelier_bot") == ("imagine", "a cat --steps 4")
    assert command_of("/imagine@Atelier_Bot a cat", "atelier_bot") == ("imagine", "a cat")
    assert command_of("/imagine@otherbot a cat", "atelier_bot") is None
    assert command_of("/ not a command", "atelier_bot") is None
    assert command_of("/" + "x" * 40, "atelier_bot") is None
