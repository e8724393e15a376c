"""What the knowledge base says: command replies, the tool's text and its sources.

Every name shown here (file names, headings, who added a document) came from a user:
it is cut to one short line and quoted; the renderers of each platform escape the rest.
This module does no I/O except checking a console path against ``allowed_paths``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from core.errors import InputRejected
from core.events import quoted
from core.plugin import ToolResult
from plugins.knowledge.library import StoredDocument
from plugins.knowledge.service import Added, Hit

Reader = Callable[[], Awaitable[bytes]]

EMPTY = "This server's knowledge base is empty: add documents with /kb add."
MAX_LISTED = 50
SNIPPET_CHARS = 300
TOOL_CHARS = 1200  # per passage given to the model


def added(result: Added) -> str:
    """The line for one added file."""
    doc = result.document
    count = doc.chunk_count
    line = f"Added {quoted(doc.source)}: {count} passage{'s' if count != 1 else ''}."
    if result.replaced:
        line += " It replaces the earlier version."
    return line


def listing(documents: Sequence[StoredDocument]) -> str:
    """One line per document (at most ``MAX_LISTED``)."""
    if not documents:
        return EMPTY
    lines = [f"{len(documents)} document{'s' if len(documents) != 1 else ''}:"]
    for doc in documents[:MAX_LISTED]:
        who = f" by {quoted(doc.added_by_name, 40)}" if doc.added_by_name else ""
        lines.append(
            f"• {quoted(doc.source)} — {doc.chunk_count} passages, added{who} "
            f"on {doc.created_at:%Y-%m-%d}"
        )
    if len(documents) > MAX_LISTED:
        lines.append(f"… and {len(documents) - MAX_LISTED} more.")
    return "\n".join(lines)


def search_results(hits: Sequence[Hit]) -> str:
    """The passages ``/kb search`` found, numbered, each with its source."""
    if not hits:
        return "Nothing in the knowledge base matches that."
    blocks = []
    for number, hit in enumerate(hits, 1):
        blocks.append(f"[{number}] {_cite(hit)}\n{_snippet(hit.chunk.text, SNIPPET_CHARS)}")
    return "\n\n".join(blocks)


def tool_result(hits: Sequence[Hit]) -> ToolResult:
    """The passages for the model (numbered) and the sources shown under the answer."""
    if not hits:
        return ToolResult("The knowledge base has nothing on that.")
    passages = [
        f"[{number}] (from {_cite(hit)})\n{_snippet(hit.chunk.text, TOOL_CHARS)}"
        for number, hit in enumerate(hits, 1)
    ]
    text = (
        "Passages from this server's knowledge base. Answer from them and cite the "
        "numbers you use, like [1].\n\n" + "\n\n".join(passages)
    )
    sources = [f"[{number}] {_cite(hit)}" for number, hit in enumerate(hits, 1)]
    return ToolResult(text, footer="Sources:\n" + "\n".join(sources))


def allowed_file(path: str, allowed: Sequence[str]) -> Path:
    """The file a console ``/kb add PATH`` names, if it lies under an allowed folder.

    Symbolic links and ``..`` are resolved first, so neither leads outside.

    Raises:
        InputRejected: No folder is allowed, the file does not exist or is not a regular
            file, or it lies outside every allowed folder.
    """
    if not allowed:
        raise InputRejected(
            "No folder is open to /kb add PATH: the operator lists folders in "
            "[plugins.config.knowledge] allowed_paths."
        )
    shown = quoted(path)
    try:
        target = Path(path.strip()).expanduser().resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        raise InputRejected(f"There is no file {shown}.") from None
    roots = [Path(folder).resolve() for folder in allowed]
    if not any(target.is_relative_to(root) for root in roots):
        raise InputRejected(f"{shown} is outside the folders open to /kb add.")
    if not target.is_file():
        raise InputRejected(f"{shown} is not a file.")
    return target


def _cite(hit: Hit) -> str:
    return quoted(hit.citation, 120)


def _snippet(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
