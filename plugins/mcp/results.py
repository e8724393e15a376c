"""What an MCP tool returned, made fit for the model and the user.

Text is cut to ``result_chars`` (with a note saying so); images (PNG, JPEG, GIF, WebP,
checked by their bytes, at most ``max_images`` of at most ``image_mb``) are written under
the plugin's folder and go to the user as image parts, the model told only that they were
shown; anything else (files, audio, links) is named, not fetched. An error result becomes
a ``ToolFailed`` whose line the model reads.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import ToolMessage

from core.errors import ToolFailed
from core.events import Image, ReplyPart
from core.plugin import ToolResult

KEPT_IMAGES = 200  # image files kept for replies (oldest removed first)
ERROR_CHARS = 500
_KINDS = {
    b"\x89PNG\r\n\x1a\n": ".png",
    b"\xff\xd8\xff": ".jpg",
    b"GIF87a": ".gif",
    b"GIF89a": ".gif",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a result reaches the model and the user."""

    chars: int = 4000
    images: int = 4
    image_bytes: int = 5 * 1024 * 1024


def converted(message: ToolMessage, label: str, folder: Path | None, limits: Limits) -> ToolResult:
    """The tool's answer as text for the model and image parts for the user.

    Raises:
        ToolFailed: The tool said it failed (its own words, cut short).
    """
    texts: list[str] = []
    parts: list[ReplyPart] = []
    notes: list[str] = []
    for block in _blocks(message.content):
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "image":
            image = _image(block, label, folder, limits, len(parts))
            if isinstance(image, Image):
                parts.append(image)
                notes.append("[an image, shown to the user]")
            else:
                notes.append(f"[an image not shown: {image}]")
        else:
            notes.append(f"[a {kind or 'block'} of content, not shown]")
    text = "\n".join(t for t in texts if t)
    if getattr(message, "status", "success") == "error":
        raise ToolFailed(f"{label} reported an error: {_cut(text, ERROR_CHARS) or 'no details'}")
    text = _cut(text, limits.chars)
    whole = "\n".join(x for x in (text, *notes) if x) or "(the tool returned nothing)"
    return ToolResult(whole, parts=tuple(parts))


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for item in content if isinstance(content, list) else []:
        if isinstance(item, str):
            blocks.append({"type": "text", "text": item})
        elif isinstance(item, dict):
            blocks.append(item)
    return blocks


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[cut: {len(text) - limit} more characters not shown]"


def _image(
    block: dict[str, Any], label: str, folder: Path | None, limits: Limits, shown: int
) -> Image | str:
    """The image saved for the reply, or why it is not shown."""
    if folder is None or shown >= limits.images:
        return "too many images"
    data64 = block.get("base64") or block.get("data")
    if not isinstance(data64, str):
        return "it is a link, not data"
    if len(data64) > limits.image_bytes * 4 // 3 + 8:
        return "too large"
    try:
        data = base64.b64decode(data64, validate=True)
    except (binascii.Error, ValueError):
        return "not valid base64"
    suffix = next((s for magic, s in _KINDS.items() if data.startswith(magic)), None)
    if suffix is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        suffix = ".webp"
    if suffix is None:
        return "not a PNG, JPEG, GIF or WebP image"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{suffix}"
    path.write_bytes(data)
    for old in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime)[:-KEPT_IMAGES]:
        old.unlink(missing_ok=True)
    return Image(path, caption=label[:80])
