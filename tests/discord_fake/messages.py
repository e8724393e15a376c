"""Message payloads of the fake Discord: building, validating and editing them.

Messages are kept as the exact dicts the API returns (``World.messages``), so what a
test reads is what discord.py parsed. Validation mirrors the Discord errors an adapter
must handle: content over 2,000 characters and empty messages are 400s (code 50035 /
50006). Nothing here does I/O.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .models import World, now_iso

if TYPE_CHECKING:
    from .models import Channel, Member, User
    from .records import UploadedFile

MAX_CONTENT = 2000
MAX_EMBEDS = 10
EPHEMERAL = 1 << 6
LOADING = 1 << 7
DEFAULT, REPLY, CHAT_INPUT_COMMAND = 0, 19, 20
_USER_MENTION = re.compile(r"<@!?(\d+)>")


class ApiError(Exception):
    """An error answer: HTTP status plus Discord's JSON error body."""

    def __init__(self, status: int, code: int, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"code": code, "message": message}
        if errors is not None:
            self.body["errors"] = errors


def unknown_message() -> ApiError:
    """404 Unknown Message (10008)."""
    return ApiError(404, 10008, "Unknown Message")


def validate(body: dict[str, Any], files: list[UploadedFile], *, creating: bool) -> None:
    """Raise ``ApiError`` for bodies Discord refuses (too long, too many embeds, empty)."""
    content = body.get("content")
    if content is not None and len(content) > MAX_CONTENT:
        raise ApiError(
            400,
            50035,
            "Invalid Form Body",
            {
                "content": {
                    "_errors": [
                        {
                            "code": "BASE_TYPE_MAX_LENGTH",
                            "message": f"Must be {MAX_CONTENT} or fewer in length.",
                        }
                    ]
                }
            },
        )
    if len(body.get("embeds") or []) > MAX_EMBEDS:
        raise ApiError(
            400,
            50035,
            "Invalid Form Body",
            {
                "embeds": {
                    "_errors": [
                        {
                            "code": "BASE_TYPE_MAX_LENGTH",
                            "message": "Must be 10 or fewer in length.",
                        }
                    ]
                }
            },
        )
    parts = ("content", "embeds", "sticker_ids", "components", "poll")
    if creating and not files and not any(body.get(k) for k in parts):
        raise ApiError(400, 50006, "Cannot send an empty message")


def attachment_payload(
    world: World,
    base_url: str,
    channel_id: int,
    upload: UploadedFile,
    cdn: dict[int, bytes],
    description: str | None = None,
) -> dict[str, Any]:
    """Store ``upload`` on the fake CDN and return its attachment object."""
    attachment_id = world.ids.next()
    cdn[attachment_id] = upload.data
    url = f"{base_url}/attachments/{channel_id}/{attachment_id}/{upload.filename}"
    return {
        "id": str(attachment_id),
        "filename": upload.filename,
        "size": upload.size,
        "url": url,
        "proxy_url": url,
        "content_type": upload.content_type,
        "description": description,
        "flags": 0,
    }


def new_message(
    world: World,
    channel: Channel,
    author: User,
    *,
    content: str = "",
    member: Member | None = None,
    mentions: list[User] | None = None,
    attachments: list[dict[str, Any]] | None = None,
    reply_to: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build, store and return a message; ``extra`` overrides any field (embeds, flags…)."""
    message_id = world.ids.next()
    found = [world.users[int(i)] for i in _USER_MENTION.findall(content) if int(i) in world.users]
    data: dict[str, Any] = {
        "id": str(message_id),
        "channel_id": str(channel.id),
        "author": author.to_payload(),
        "content": content,
        "timestamp": now_iso(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [u.to_payload() for u in _unique([*(mentions or []), *found])],
        "mention_roles": [],
        "mention_channels": [],
        "attachments": attachments or [],
        "embeds": [],
        "components": [],
        "reactions": [],
        "pinned": False,
        "type": REPLY if reply_to else DEFAULT,
        "flags": 0,
    }
    if channel.guild is not None:
        data["guild_id"] = str(channel.guild.id)
        if member is not None:
            data["member"] = member.to_payload(with_user=False)
    if reply_to is not None:
        data["message_reference"] = {
            "type": 0,
            "message_id": reply_to["id"],
            "channel_id": reply_to["channel_id"],
            "guild_id": reply_to.get("guild_id"),
            "fail_if_not_exists": False,
        }
        data["referenced_message"] = {
            k: v for k, v in reply_to.items() if k != "referenced_message"
        }
    data.update(extra or {})
    world.messages[message_id] = data
    return data


def bot_message(
    world: World,
    channel: Channel,
    body: dict[str, Any],
    attachments: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A message the bot posts from a REST body (content, embeds, components, reply…)."""
    ref = body.get("message_reference") or {}
    reply_to = world.messages.get(int(ref["message_id"])) if ref.get("message_id") else None
    guild = channel.guild
    fields = {
        k: body[k]
        for k in ("embeds", "components", "flags", "tts", "nonce", "poll")
        if body.get(k) is not None
    }
    if body.get("sticker_ids"):
        fields["sticker_items"] = [
            {"id": str(i), "name": "sticker", "format_type": 1} for i in body["sticker_ids"]
        ]
    return new_message(
        world,
        channel,
        world.bot,
        content=body.get("content") or "",
        member=guild.bot_member if guild else None,
        attachments=attachments,
        reply_to=reply_to,
        extra={**fields, **(extra or {})},
    )


def apply_edit(
    message: dict[str, Any], body: dict[str, Any], new_attachments: list[dict[str, Any]]
) -> dict[str, Any]:
    """Apply a PATCH body in place; ``attachments`` in the body lists the ones kept."""
    for key in ("content", "embeds", "components", "flags", "poll"):
        if key in body:
            message[key] = body[key] if body[key] is not None else _EMPTY[key]
    if "attachments" in body:
        keep = {str(a["id"]) for a in body["attachments"] or []}
        message["attachments"] = [a for a in message["attachments"] if a["id"] in keep]
    message["attachments"] = [*message["attachments"], *new_attachments]
    message["flags"] = int(message.get("flags") or 0) & ~LOADING
    message["edited_timestamp"] = now_iso()
    return message


_EMPTY: dict[str, Any] = {"content": "", "embeds": [], "components": [], "flags": 0, "poll": None}


def _unique(users: list[User]) -> list[User]:
    seen: dict[int, User] = {}
    for user in users:
        seen.setdefault(user.id, user)
    return list(seen.values())


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON with exactly ``Content-Type: application/json``: discord.py compares the
    header verbatim, so aiohttp's ``; charset=utf-8`` would make it read text."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )
