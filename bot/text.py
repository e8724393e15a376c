"""Splitting long text into a platform's messages (Discord: 2,000 characters, Telegram:
4,096) without breaking code.

Pure functions, no I/O: where to cut, and which code block must be closed at the end of a
chunk and reopened at the start of the next. Nothing here sends anything.

The text is untrusted (model output, prompts people typed), so every step of the split
consumes at least one character and every chunk fits the limit whatever the text holds:
the fences added around a cut are at most 28 characters (and at most an eighth of the
limit), because only a real fence line counts: three backticks at the start of a line,
an optional language tag of at most 20 characters, nothing else but trailing blanks. A
longer or indented backtick line, or backticks mid-line, are ordinary text and are never
copied into another chunk.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

_FENCE_LINE = re.compile(r"^```([A-Za-z0-9_+#.-]{0,20})[ \t\r]*$", re.MULTILINE)
_CLOSE = "\n```"
_MIN_FENCED_LIMIT = 8 * len("```\n" + _CLOSE)  # below this, fences cost too much room
_MAX_FENCE_LINE = 32  # a fence line this short moves to the next chunk rather than end one
_LOOKBACK = 100  # how far back from the limit a cut looks for a line break or a space


@dataclass(frozen=True)
class _Fence:
    start: int  # index of the fence line's first backtick
    tag: str  # its language tag ("" for a bare fence)


def split_message(text: str, limit: int) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters.

    Cuts at the last line break within ``_LOOKBACK`` characters of the limit (the line
    break is dropped: the message boundary stands for it), else after the last space
    there, else anywhere. A code block open at a cut is closed at the end of its chunk
    and reopened in the next, with its language tag where that leaves plenty of room.
    Nothing else is added or lost: see ``tests/adapters_discord/test_discord_split.py``.
    """
    return list(iter_chunks(text, limit))


def iter_chunks(text: str, limit: int) -> Iterator[str]:
    """``split_message``, one chunk at a time (computed as they are taken)."""
    return (chunk for chunk, _ in _pieces(text, limit))


def split_capped(text: str, max_chunks: int, limit: int) -> tuple[list[str], str]:
    """At most ``max_chunks`` chunks of ``text``, and the text that did not fit.

    When ``text`` needs more chunks, returns the first ``max_chunks - 1`` of them and the
    rest of the text from where they stop (to be sent another way, e.g. as a file);
    otherwise every chunk and ``""``. Only the chunks shown are computed.
    """
    if max_chunks < 1:
        raise ValueError("max_chunks must be at least 1")
    head = list(itertools.islice(_pieces(text, limit), max_chunks + 1))
    if len(head) <= max_chunks:
        return [chunk for chunk, _ in head], ""
    kept = head[: max_chunks - 1]
    stop = kept[-1][1] if kept else 0
    return [chunk for chunk, _ in kept], text[stop:]


def _pieces(text: str, limit: int) -> Iterator[tuple[str, int]]:
    """Yield each chunk and the index in ``text`` where the next chunk's text starts."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    fenced = limit >= _MIN_FENCED_LIMIT
    fences = _fence_lines(text) if fenced else []
    passed = 0  # fences before ``pos``
    tag: str | None = None  # the language tag of the block open at ``pos``; None: none
    pos = 0
    while pos < len(text):
        opening = "" if tag is None else _reopen(tag, limit)
        if len(opening) + len(text) - pos <= limit:
            yield opening + text[pos:], len(text)
            return
        room = limit - len(opening) - (len(_CLOSE) if fenced else 0)
        stop, resume = _cut(text, pos, room)
        upto = passed
        while upto < len(fences) and fences[upto].start < stop:
            upto += 1
        if _opens_at_end(text, fences[passed:upto], tag, pos, stop):
            # Leave the block's opening line to the next chunk rather than close an empty
            # block right after it.
            upto -= 1
            stop, resume = fences[upto].start - 1, fences[upto].start
        for fence in fences[passed:upto]:
            tag = None if tag is not None else fence.tag
        passed = upto
        yield opening + text[pos:stop] + ("" if tag is None else _CLOSE), resume
        pos = resume


def _fence_lines(text: str) -> list[_Fence]:
    return [_Fence(match.start(), match.group(1)) for match in _FENCE_LINE.finditer(text)]


def _opens_at_end(text: str, crossed: list[_Fence], tag: str | None, pos: int, stop: int) -> bool:
    """Whether the last fence in ``text[pos:stop]`` opens a block and is its last line,
    short, with text before it: a chunk can then stop just before it instead."""
    if not crossed or (len(crossed) % 2 == 1) != (tag is None):
        return False
    last = crossed[-1].start
    return last - 1 > pos and stop - last <= _MAX_FENCE_LINE and "\n" not in text[last:stop]


def _reopen(tag: str, limit: int) -> str:
    """The line reopening a block; its tag is dropped unless the fences stay under 1/8."""
    tagged = f"```{tag}\n"
    return tagged if 8 * (len(tagged) + len(_CLOSE)) <= limit else "```\n"


def _cut(text: str, pos: int, room: int) -> tuple[int, int]:
    """Where the chunk starting at ``pos`` (with ``room`` characters) stops, and where the
    next one resumes; ``pos < stop <= pos + room`` and ``stop <= resume <= stop + 1``.

    The search looks back at most ``_LOOKBACK`` characters (and half the room), so every
    full chunk is nearly full: a text needs about as many chunks as its length allows.
    """
    end = pos + room
    floor = end - min(_LOOKBACK, room // 2)
    # A line break is dropped only between two chunks, never at the very end.
    newline = text.rfind("\n", max(floor, pos + 1), min(end + 1, len(text) - 1))
    if newline != -1:
        return newline, newline + 1
    space = text.rfind(" ", floor, end)
    if space != -1:
        return space + 1, space + 1
    return end, end
