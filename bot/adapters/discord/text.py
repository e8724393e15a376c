"""Splitting long text into Discord messages (2,000 characters) without breaking code.

Pure functions, no I/O: where to cut, and which code block must be closed at the end of a
chunk and reopened at the start of the next. Nothing here sends anything.
"""

from __future__ import annotations

MESSAGE_LIMIT = 2000
_FENCE = "```"
_CLOSE = "\n```"


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters.

    Cuts at a line break (else a space, else anywhere); a code block open at a cut is
    closed at the end of its chunk and reopened, with the same language, in the next.
    """
    chunks: list[str] = []
    fence: str | None = None  # the opening line of the code block a chunk starts inside
    rest = text
    while rest:
        prefix = f"{fence}\n" if fence else ""
        if len(prefix) + len(rest) <= limit:
            chunks.append(prefix + rest)
            break
        piece, rest = _cut(rest, limit - len(prefix) - len(_CLOSE))
        fence = _fence_after(piece, fence)
        chunks.append(prefix + piece + (_CLOSE if fence else ""))
    return chunks


def _cut(text: str, room: int) -> tuple[str, str]:
    """The head of ``text`` that fits in ``room`` characters, and what is left after it."""
    newline = text.rfind("\n", 0, room + 1)
    if newline > room // 2:
        return text[:newline], text[newline + 1 :]
    space = text.rfind(" ", 0, room)
    if space > room // 2:
        return text[: space + 1], text[space + 1 :]
    return text[:room], text[room:]


def _fence_after(piece: str, fence: str | None) -> str | None:
    """The code block still open after ``piece`` (its opening line), given the one before."""
    for line in piece.split("\n"):
        stripped = line.strip()
        if not stripped.startswith(_FENCE):
            continue
        fence = None if fence else stripped
    return fence
