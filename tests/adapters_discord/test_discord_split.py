"""Splitting hostile text into Discord messages: it ends, fits, stays few, and loses nothing.

``split_message`` sees model answers and text people typed (prompts the bot echoes), so it
is tested by properties over hostile text: fences with long "language" lines, lines
longer than a message, backticks and blanks where the cuts fall, zero-width and
right-to-left marks, inputs up to 50,000 characters. Chunks are taken lazily and at most
one per character of text, and every test has a hard time limit: a split that stops
advancing fails instead of hanging the suite or filling the memory.

The round trip, precisely: a chunk is ``opening + body + closing``, where ``opening`` is
empty or an added line reopening a code block (three backticks, a tag of at most 20
characters of ``[A-Za-z0-9_+#.-]``, a line break) and ``closing`` is empty or the added
``"\\n```"``; the text is the bodies in order, where a cut may have dropped one line break
between two of them (the message boundary stands for it). Nothing else is added or lost.
"""

from __future__ import annotations

import itertools
import math
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.adapters.discord.sinks import MESSAGE_LIMIT
from bot.text import iter_chunks, split_capped
from bot.text import split_message as _split


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    return _split(text, limit)


pytestmark = pytest.mark.timeout(60)

MAX_EXTRA_CHUNKS = 3  # over ceil(len / limit), for texts up to 50,000 characters
_OPENING = re.compile(r"```[A-Za-z0-9_+#.-]{0,20}\n")
_CLOSING = "\n```"

_TAGS = st.one_of(
    st.sampled_from(["", "py", "python", "c++", "c#", "objective-c", "x" * 20, "x" * 21]),
    st.text(alphabet="abcXYZ019_+#.-`", max_size=30),
)
_FENCE_LINES = st.builds(
    lambda indent, tag, trail: f"{indent}```{tag}{trail}",
    st.sampled_from(["", "", "", " ", "   ", "\t"]),
    _TAGS,
    st.sampled_from(["", "", " ", "\t", "\r", " x"]),
)
_SEGMENTS = st.one_of(
    _FENCE_LINES,
    st.just("\n"),
    st.just("\n\n"),
    st.integers(1, 300).map(lambda n: " " * n),
    st.integers(0, 4500).map(lambda n: "y" * n),  # a line longer than a message
    st.integers(1960, 2010).map(lambda n: "z" * n),  # puts what follows at a cut
    st.integers(1900, 2100).map(lambda n: "```" + "l" * (n - 3)),  # a "language" line
    st.sampled_from(["`", "``", "```", "````", " ``` ", "a```b", "```\n```", "\n```\n"]),
    st.sampled_from(["\u200b", "\u200d", "\u202e", "\u2067", "\ufeff", "👩\u200d💻", "e\u0301"]),
    st.sampled_from(["\r\n", "\t", "word ", "two words\n", "    indented code\n"]),
    st.text(max_size=120),
)
HOSTILE = st.lists(_SEGMENTS, max_size=80).map(lambda parts: "".join(parts)[:50_000])
HUGE = st.lists(_SEGMENTS, min_size=20, max_size=200).map(lambda parts: "".join(parts)[:50_000])

_SETTINGS = settings(
    max_examples=150,
    deadline=None,  # the time limit is the test's; shared CPUs make a per-example one flaky
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def rebuilds(chunks: list[str], text: str) -> bool:
    """Whether ``text`` is ``chunks`` less added fences and dropped line breaks at cuts.

    Each chunk may or may not carry an added opening and closing, and each cut may or may
    not have dropped a line break; every reading is tried (a set of positions in ``text``),
    so the check needs no knowledge of where the splitter thinks blocks are.
    """
    positions = {0}
    for index, chunk in enumerate(chunks):
        bodies = {chunk}
        opening = _OPENING.match(chunk)
        if opening:
            bodies.add(chunk[opening.end() :])
        bodies |= {body.removesuffix(_CLOSING) for body in bodies if body.endswith(_CLOSING)}
        gaps = ("",) if index == 0 else ("", "\n")
        positions = {
            pos + len(gap) + len(body)
            for pos in positions
            for gap in gaps
            for body in bodies
            if text.startswith(gap + body, pos)
        }
        if not positions:
            return False
    return len(text) in positions


def check(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """The chunks of ``text``, checked: each advances, fits, and they rebuild the text."""
    chunks = list(itertools.islice(iter_chunks(text, limit), len(text) + 1))
    assert len(chunks) <= len(text), "a chunk did not advance"
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    assert rebuilds(chunks, text)
    if not text:
        assert chunks == []
    return chunks


@pytest.mark.timeout(120)
@_SETTINGS
@given(text=HOSTILE)
@example(text="```" + "l" * 1992 + "\n" + "code\n" * 400)  # the old infinite loop
@example(text="`" * 5000)
@example(text="```py\n" + ("x" * 1990 + "\n```\n```\n") * 20)
def test_hostile_text_splits_within_the_limit_into_few_chunks_and_loses_nothing(
    text: str,
) -> None:
    chunks = check(text)

    assert len(chunks) <= math.ceil(len(text) / MESSAGE_LIMIT) + MAX_EXTRA_CHUNKS


@pytest.mark.timeout(120)
@settings(_SETTINGS, max_examples=40)
@given(text=HUGE)
def test_huge_hostile_text_stays_within_a_few_chunks_of_the_minimum(text: str) -> None:
    chunks = check(text)

    assert len(chunks) <= math.ceil(len(text) / MESSAGE_LIMIT) + MAX_EXTRA_CHUNKS


@pytest.mark.timeout(120)
@_SETTINGS
@given(text=HOSTILE.map(lambda text: text[:8000]), limit=st.integers(1, 2500))
def test_any_limit_terminates_and_fits(text: str, limit: int) -> None:
    check(text, limit)


@_SETTINGS
@given(text=HOSTILE, cap=st.integers(1, 6))
def test_capped_split_shows_the_first_chunks_and_hands_over_the_rest(text: str, cap: int) -> None:
    chunks = check(text)

    shown, rest = split_capped(text, cap, MESSAGE_LIMIT)

    if len(chunks) <= cap:
        assert (shown, rest) == (chunks, "")
    else:
        assert shown == chunks[: cap - 1]
        assert rest and text.endswith(rest)
        assert rebuilds([*shown, rest], text)


# ---- the cases from the issue, one by one --------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("length", [1990, 1995, 1996, 2000, 2010])
def test_an_opening_line_near_the_limit_neither_hangs_nor_multiplies_nor_overflows(
    length: int,
) -> None:
    text = "```" + "l" * (length - 3) + "\n" + "some code\n" * 300 + "```\nThe end."

    chunks = check(text)

    assert len(chunks) <= math.ceil(len(text) / MESSAGE_LIMIT) + 1
    assert not any(chunk.startswith("```lll") for chunk in chunks[1:])  # never copied


@pytest.mark.timeout(10)
def test_the_old_infinite_loop_ends() -> None:
    # The whole first line (1,995 characters) was reopened in every chunk, which left room
    # for nothing (with the closing fence, exactly 2,000): no chunk ever advanced.
    text = "```" + "l" * 1992 + "\n" + "x" * 3000

    assert len(check(text)) == 3


def test_a_real_fence_is_reopened_with_its_language() -> None:
    text = "Intro\n```python\n" + "\n".join(f"print({i})" for i in range(400)) + "\n```\nOutro"

    chunks = check(text)

    assert split_message(text) == chunks
    assert len(chunks) > 2
    assert all(chunk.endswith("\n```") for chunk in chunks[:-1])
    assert all(chunk.startswith("```python\n") for chunk in chunks[1:])


@pytest.mark.parametrize(
    "line",
    ["    ```python", " ```python", "say ```python", "```python extra", "```" + "t" * 21],
)
def test_an_indented_mid_line_or_long_tagged_backtick_line_is_not_a_fence(line: str) -> None:
    text = line + "\n" + "word " * 1000

    chunks = check(text)

    assert len(chunks) > 1
    assert not any(chunk.endswith("\n```") for chunk in chunks)
    assert not any(chunk.startswith("```") for chunk in chunks[1:])


def test_the_language_tag_is_dropped_when_a_small_limit_has_no_room_for_it() -> None:
    text = "```objective-c\n" + "\n".join(f"x{i};" for i in range(100))

    chunks = check(text, limit=100)

    assert all(chunk.startswith("```\n") for chunk in chunks[1:])


def test_backticks_at_a_cut_are_not_taken_for_a_fence() -> None:
    text = "a" * 1996 + "```" + "b" * 2500  # a hard cut falls right before the backticks

    chunks = check(text)

    assert not any(chunk.endswith("\n```") or chunk.startswith("```\n") for chunk in chunks)


def test_a_block_opening_at_a_cut_moves_to_the_next_chunk() -> None:
    text = "x" * 1990 + "\n```py\n" + "y" * 100 + "\n```"

    first, second = check(text)

    assert first == "x" * 1990
    assert second.startswith("```py\nyyy")
