"""What the fake Telegram knows: users, chats, messages, files, pending updates.

``World`` is plain data plus small helpers; the Bot API methods (``methods.py``) and the
test-facing façade (``server.py``) both work on it. Messages are stored as the Bot API
``Message`` JSON, with one internal key, ``html`` (the raw HTML the bot sent), which
``public`` strips before anything goes over the wire.
"""

from __future__ import annotations

import asyncio
import itertools
import mimetypes
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from .objects import Chat, StoredFile, User, bad_request

INTERNAL_KEYS = frozenset({"html"})
# Update types Telegram leaves out unless ``allowed_updates`` names them.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_FILE_PREFIX = {"photo": "AgACAgQ", "document": "BQACAgQ", "voice": "AwACAgQ", "sticker": "CAACAgQ"}
_FILE_FOLDER = {"photo": "photos", "document": "documents", "voice": "voice", "sticker": "stickers"}


def public(message: dict[str, Any]) -> dict[str, Any]:
    """The message as the Bot API shows it (internal keys removed)."""
    return {k: v for k, v in message.items() if k not in INTERNAL_KEYS}


def update_type(update: dict[str, Any]) -> str:
    """``message``, ``callback_query``, … : the update's one non-id key."""
    return next(k for k in update if k != "update_id")


class World:
    """The fake's whole state for one bot."""

    def __init__(self, token: str, bot_username: str) -> None:
        self.token = token
        self.bot = User(int(token.split(":", 1)[0]), "Atelier", bot_username, is_bot=True)
        self.users: dict[int, User] = {}
        self.chats: dict[int, Chat] = {}
        self.messages: dict[int, dict[int, dict[str, Any]]] = {}
        self.files: dict[str, StoredFile] = {}
        self.updates: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()
        self.closing = False
        self.waiting_polls = 0  # getUpdates calls parked in a long poll right now
        self.allowed_updates: list[str] | None = None
        self.admins: set[tuple[int, int]] = set()
        self.demoted: set[int] = set()  # chats where the bot is no administrator
        self.deleted: list[tuple[int, int]] = []  # (chat id, message id), in order
        # (chat id, user id) -> the last restrictChatMember: permissions, until_date
        # (0: forever) and forever.
        self.restrictions: dict[tuple[int, int], dict[str, Any]] = {}
        self.blocked: set[int] = set()
        self.migrated: dict[int, int] = {}
        self.commands: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self.callbacks: dict[str, bool] = {}  # callback query id -> answered
        self.answered: list[str] = []
        self.actions: dict[int, list[str]] = {}
        self.drafts: dict[int, list[dict[str, Any]]] = {}
        self.edits: Counter[tuple[int, int]] = Counter()
        self.inline_messages: dict[str, dict[str, Any]] = {}
        self.webhook: dict[str, Any] = {"url": ""}
        self._user_ids = itertools.count(100_000_001)
        self._group_ids = itertools.count(400_000_001)
        self._super_ids = itertools.count(1_001_000_000_001)
        self._update_ids = itertools.count(700_000_001)
        self._file_ids = itertools.count(1)
        self._poll_ids = itertools.count(5_000_000_000_000_000_001)
        self._query_ids = itertools.count(4_000_000_000_000_000_001)
        self._message_ids: dict[int, Iterator[int]] = {}
        self.owner: User | None = None

    # --- chats and users ----------------------------------------------------------------

    def add_user(self, first_name: str, username: str | None = None) -> User:
        """A new human user."""
        user = User(next(self._user_ids), first_name, username)
        self.users[user.id] = user
        return user

    def add_chat(self, chat: Chat) -> Chat:
        """Register a chat (its message ids start at 1)."""
        self.chats[chat.id] = chat
        self.messages.setdefault(chat.id, {})
        self._message_ids.setdefault(chat.id, itertools.count(1))
        return chat

    def private_chat(self, user: User) -> Chat:
        """The private chat between the bot and ``user``."""
        return self.chats.get(user.id) or self.add_chat(
            Chat(user.id, "private", first_name=user.first_name, username=user.username)
        )

    def group(self, title: str, *, supergroup: bool) -> Chat:
        """A new basic group or supergroup (negative ids, ``-100…`` for supergroups)."""
        if supergroup:
            return self.add_chat(Chat(-next(self._super_ids), "supergroup", title=title))
        return self.add_chat(Chat(-next(self._group_ids), "group", title=title))

    def channel(self, title: str) -> Chat:
        """A new channel (the bot is one of its administrators)."""
        return self.add_chat(Chat(-next(self._super_ids), "channel", title=title))

    def group_owner(self) -> User:
        """A user who owns the groups (performs migrations) unless a story names one."""
        if self.owner is None:
            self.owner = self.add_user("Owner", "group_owner")
        return self.owner

    def resolve_chat(self, chat_id: Any) -> Chat:
        """The chat for a ``chat_id`` parameter (an id or ``@username``), or 400."""
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            found = [c for c in self.chats.values() if c.username == chat_id[1:]]
            if found:
                return found[0]
            raise bad_request("chat not found")
        try:
            key = int(chat_id)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None
        if key in self.migrated:
            raise bad_request(
                "group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self.migrated[key]},
            )
        if key not in self.chats:
            raise bad_request("chat not found")
        return self.chats[key]

    # --- messages -----------------------------------------------------------------------

    def new_message(
        self, chat: Chat, sender: User | None, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """Store a new message in ``chat`` from ``sender`` (None: a channel post)."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids[chat.id]),
            "date": int(time.time()),
            "chat": chat.to_json(),
        }
        if sender is not None:
            message["from"] = sender.to_json()
        else:
            message["sender_chat"] = chat.to_json()
        message.update(fields)
        self.messages[chat.id][message["message_id"]] = message
        return message

    def message(self, chat: Chat, message_id: Any) -> dict[str, Any] | None:
        """The stored message, or None."""
        try:
            return self.messages.get(chat.id, {}).get(int(message_id))
        except (TypeError, ValueError):
            return None

    def is_bots(self, message: dict[str, Any]) -> bool:
        """Whether the bot sent ``message``."""
        return bool(message.get("from", {}).get("id") == self.bot.id)

    def bot_messages(self, chat: Chat) -> list[dict[str, Any]]:
        """The bot's messages in ``chat`` as they are now, oldest first (copies)."""
        return [
            dict(m) for _, m in sorted(self.messages.get(chat.id, {}).items()) if self.is_bots(m)
        ]

    # --- files --------------------------------------------------------------------------

    def store_file(self, data: bytes, filename: str, mime_type: str, kind: str) -> StoredFile:
        """Keep ``data`` as a Telegram file of ``kind``; ``getFile`` will serve it."""
        number = next(self._file_ids)
        suffix = mimetypes.guess_extension(mime_type) or ""
        if "." in filename:
            suffix = "." + filename.rsplit(".", 1)[1]
        stored = StoredFile(
            file_id=f"{_FILE_PREFIX[kind]}{number:08d}fake{self.bot.id}",
            file_unique_id=f"AQAD{number:08d}",
            data=data,
            filename=filename,
            mime_type=mime_type,
            kind=kind,
            file_path=f"{_FILE_FOLDER[kind]}/file_{number}{suffix}",
        )
        self.files[stored.file_id] = stored
        return stored

    def file_by_path(self, path: str) -> StoredFile | None:
        """The file served at ``/file/bot<token>/<path>``."""
        return next((f for f in self.files.values() if f.file_path == path), None)

    def content_of(self, kind: str) -> dict[str, Any]:
        """The fields of a user's ``sticker``, ``voice``, ``location`` or ``poll`` message."""
        if kind == "sticker":
            f = self.store_file(b"RIFF\0\0\0\0WEBP", "sticker.webp", "image/webp", "sticker")
            fields: dict[str, Any] = {
                "sticker": {
                    "file_id": f.file_id,
                    "file_unique_id": f.file_unique_id,
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                    "type": "regular",
                    "emoji": "👍",
                    "file_size": len(f.data),
                }
            }
        elif kind == "voice":
            f = self.store_file(b"OggS" + bytes(60), "voice.ogg", "audio/ogg", "voice")
            fields = {
                "voice": {
                    "file_id": f.file_id,
                    "file_unique_id": f.file_unique_id,
                    "duration": 2,
                    "mime_type": "audio/ogg",
                    "file_size": len(f.data),
                }
            }
        elif kind == "location":
            fields = {"location": {"latitude": 48.8584, "longitude": 2.2945}}
        elif kind == "poll":
            fields = {"poll": _poll(str(next(self._poll_ids)))}
        else:
            raise ValueError(f"unknown kind {kind!r}: sticker, voice, location or poll")
        return fields

    def new_query_id(self) -> str:
        """A fresh callback query id, pending until the bot answers it."""
        query_id = str(next(self._query_ids))
        self.callbacks[query_id] = False
        return query_id

    # --- updates ------------------------------------------------------------------------

    def new_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """An ``Update`` carrying ``payload`` under ``kind``."""
        return {"update_id": next(self._update_ids), kind: payload}

    async def enqueue(self, update: dict[str, Any]) -> None:
        """Queue ``update`` for ``getUpdates`` and wake the long polls."""
        self.updates.append(update)
        await self.notify()

    async def notify(self) -> None:
        """Wake every ``getUpdates`` waiting on ``changed``."""
        async with self.changed:
            self.changed.notify_all()

    def confirm(self, offset: int) -> None:
        """Forget updates confirmed by ``offset`` (negative: keep only the last ``-offset``)."""
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]

    def pending(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` queued updates of the allowed types (others are dropped)."""
        allowed = self.allowed_updates
        wanted = (
            (lambda kind: kind not in OPT_IN_UPDATES)
            if not allowed
            else (lambda kind: kind in allowed)
        )
        self.updates = [u for u in self.updates if wanted(update_type(u))]
        return self.updates[:limit]


def _poll(poll_id: str) -> dict[str, Any]:
    return {
        "id": poll_id,
        "question": "Lunch?",
        "options": [
            {"text": text, "voter_count": 0, "persistent_id": str(i)}
            for i, text in enumerate(("Yes", "No"))
        ],
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
        "allows_revoting": False,  # required by PTB 22.8 (Bot API 9.6)
        "members_only": False,  # required by PTB 22.8 (Bot API 10.0)
    }
