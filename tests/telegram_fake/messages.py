"""Sending and editing messages: the Bot API methods that write into a chat.

``MessageMethods`` is the half of ``BotMethods`` that creates, edits and deletes messages,
enforcing Telegram's rules: text and caption limits after entity parsing, inline keyboard
``callback_data`` sizes, "message is not modified", uploaded photos that must be images.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from .objects import (
    ApiError,
    Chat,
    Formatted,
    StoredFile,
    Upload,
    bad_request,
    check_reply_markup,
    format_text,
)
from .state import World, public

CHAT_ACTIONS = frozenset(
    "typing upload_photo record_video upload_video record_voice upload_voice upload_document"
    " choose_sticker find_location record_video_note upload_video_note".split()
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly"
    " the same as a current content and reply markup of the message"
)
UPLOAD_LIMIT = 50 * 1024 * 1024
PHOTO_LIMIT = 10 * 1024 * 1024


def forbidden_for(chat: Chat) -> ApiError:
    """What Telegram answers when the bot may not write to ``chat`` any more."""
    reason = {
        "private": "bot was blocked by the user",
        "group": "bot was kicked from the group chat",
        "supergroup": "bot was kicked from the supergroup chat",
    }.get(chat.type, "bot is not a member of the channel chat")
    return ApiError(403, f"Forbidden: {reason}")


class MessageMethods:
    """The message-writing methods, on one ``World``."""

    world: World

    def _chat(self, params: dict[str, Any], *, writing: bool = False) -> Chat:
        chat = self.world.resolve_chat(params.get("chat_id"))
        if writing and chat.id in self.world.blocked:
            raise forbidden_for(chat)
        return chat

    # --- sending ------------------------------------------------------------------------

    def sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        """A text message (HTML parsed, limits enforced, inline keyboard checked)."""
        chat = self._chat(params, writing=True)
        text = format_text(params.get("text"), params.get("parse_mode"), params.get("entities"))
        fields = self._common(chat, params)
        fields["text"] = text.text
        return public(self._store(chat, fields, text, "entities"))

    def sendMessageDraft(self, params: dict[str, Any]) -> bool:
        """A streamed draft in a private chat (0..4096 characters); recorded, never stored."""
        chat = self._chat(params, writing=True)
        if chat.type != "private":
            raise bad_request("message drafts can be sent only to private chats")
        if not params.get("draft_id"):
            raise bad_request("draft_id must be non-zero")
        text = format_text(
            params.get("text"), params.get("parse_mode"), params.get("entities"), allow_empty=True
        )
        draft = {"draft_id": params["draft_id"], "text": text.text}
        if text.html is not None:
            draft["html"] = text.html
        self.world.drafts.setdefault(chat.id, []).append(draft)
        return True

    def sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        """A photo: an upload (must be an image, ≤ 10 MB), a known file_id or a URL."""
        chat = self._chat(params, writing=True)
        caption = self._caption(params)
        fields = self._common(chat, params)
        photo = params.get("photo")
        if isinstance(photo, Upload):
            if len(photo.data) > PHOTO_LIMIT:
                raise ApiError(413, "Request Entity Too Large")
            width, height = _image_size(photo.data)
            stored = self.world.store_file(photo.data, photo.filename, "image/jpeg", "photo")
        else:
            stored = self._known_file(photo, "photo")
            width, height = _image_size(stored.data) if stored.data else (800, 600)
        fields["photo"] = _photo_sizes(stored, width, height)
        return public(self._store(chat, fields, caption, "caption_entities"))

    def sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        """A document: an upload (≤ 50 MB) or a known file_id."""
        chat = self._chat(params, writing=True)
        caption = self._caption(params)
        fields = self._common(chat, params)
        document = params.get("document")
        if isinstance(document, Upload):
            if len(document.data) > UPLOAD_LIMIT:
                raise ApiError(413, "Request Entity Too Large")
            stored = self.world.store_file(
                document.data, document.filename, document.content_type, "document"
            )
        else:
            stored = self._known_file(document, "document")
        fields["document"] = document_json(stored)
        return public(self._store(chat, fields, caption, "caption_entities"))

    def sendChatAction(self, params: dict[str, Any]) -> bool:
        """Record the action (``typing``, ``upload_photo``, …)."""
        chat = self._chat(params, writing=True)
        action = str(params.get("action", ""))
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.world.actions.setdefault(chat.id, []).append(action)
        return True

    # --- editing ------------------------------------------------------------------------

    def editMessageText(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        """New text (and keyboard: leaving ``reply_markup`` out removes it)."""
        text = format_text(params.get("text"), params.get("parse_mode"), params.get("entities"))
        markup = params.get("reply_markup")
        check_reply_markup(markup)
        if "inline_message_id" in params:
            return self._edit_inline(params, {"text": text.text, "reply_markup": markup})
        chat, message = self._editable(params)
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        return self._apply(chat, message, text, "text", "entities", markup)

    def editMessageCaption(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        """New caption of a media message."""
        caption = self._caption(params)
        markup = params.get("reply_markup")
        check_reply_markup(markup)
        if "inline_message_id" in params:
            return self._edit_inline(params, {"caption": caption.text, "reply_markup": markup})
        chat, message = self._editable(params)
        if "text" in message:
            raise bad_request("there is no caption in the message to edit")
        return self._apply(chat, message, caption, "caption", "caption_entities", markup)

    def editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        """New inline keyboard (none: removed)."""
        markup = params.get("reply_markup")
        check_reply_markup(markup)
        if "inline_message_id" in params:
            return self._edit_inline(params, {"reply_markup": markup})
        chat, message = self._editable(params)
        if message.get("reply_markup") == (markup or None):
            raise bad_request(NOT_MODIFIED)
        _set_markup(message, markup)
        return self._edited(chat, message)

    def deleteMessage(self, params: dict[str, Any]) -> bool:
        """Remove a message from the chat; someone else's in a group only while the bot is
        an administrator there."""
        chat = self._chat(params, writing=True)
        message = self.world.message(chat, params.get("message_id"))
        if message is None:
            raise bad_request("message to delete not found")
        if chat.id in self.world.demoted and not self.world.is_bots(message):
            raise bad_request("message can't be deleted")
        del self.world.messages[chat.id][message["message_id"]]
        self.world.deleted.append((chat.id, message["message_id"]))
        return True

    # --- helpers ------------------------------------------------------------------------

    def _caption(self, params: dict[str, Any]) -> Formatted:
        return format_text(
            params.get("caption"),
            params.get("parse_mode"),
            params.get("caption_entities"),
            caption=True,
            allow_empty=True,
        )

    def _common(self, chat: Chat, params: dict[str, Any]) -> dict[str, Any]:
        """The fields every sent message shares: keyboard and the message replied to."""
        fields: dict[str, Any] = {"from": self.world.bot.to_json()}
        markup = params.get("reply_markup")
        check_reply_markup(markup)
        if markup:
            fields["reply_markup"] = markup
        reply = params.get("reply_parameters") or {}
        if "reply_to_message_id" in params:
            reply = {"message_id": params["reply_to_message_id"]}
        if reply:
            target = self.world.message(chat, reply.get("message_id"))
            if target is not None:
                fields["reply_to_message"] = {
                    k: v for k, v in public(target).items() if k != "reply_to_message"
                }
            elif not reply.get("allow_sending_without_reply"):
                raise bad_request("message to be replied not found")
        return fields

    def _store(
        self, chat: Chat, fields: dict[str, Any], text: Formatted, entities_key: str
    ) -> dict[str, Any]:
        if entities_key == "caption_entities" and text.text:
            fields["caption"] = text.text
        if text.entities:
            fields[entities_key] = text.entities
        if text.html is not None:
            fields["html"] = text.html
        return self.world.new_message(chat, self.world.bot, fields)

    def _known_file(self, value: Any, kind: str) -> StoredFile:
        """A file sent by ``file_id`` (or an HTTP URL, taken as an empty remote file)."""
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            name = value.rsplit("/", 1)[-1] or "file"
            return self.world.store_file(b"", name, "application/octet-stream", kind)
        stored = self.world.files.get(str(value or ""))
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        if stored.kind != kind:
            raise bad_request(
                f"can't use file of type {stored.kind.capitalize()} as {kind.capitalize()}"
            )
        return stored

    def _editable(self, params: dict[str, Any]) -> tuple[Chat, dict[str, Any]]:
        chat = self._chat(params, writing=True)
        message = self.world.message(chat, params.get("message_id"))
        if message is None:
            raise bad_request("message to edit not found")
        if not self.world.is_bots(message):
            raise bad_request("message can't be edited")
        return chat, message

    def _apply(
        self,
        chat: Chat,
        message: dict[str, Any],
        text: Formatted,
        key: str,
        entities_key: str,
        markup: Any,
    ) -> dict[str, Any]:
        before = (message.get(key, ""), message.get(entities_key, []), message.get("reply_markup"))
        if before == (text.text, text.entities, markup or None):
            raise bad_request(NOT_MODIFIED)
        message[key] = text.text
        for name, value in ((entities_key, text.entities), ("html", text.html)):
            if value:
                message[name] = value
            else:
                message.pop(name, None)
        _set_markup(message, markup)
        return self._edited(chat, message)

    def _edited(self, chat: Chat, message: dict[str, Any]) -> dict[str, Any]:
        message["edit_date"] = max(message["date"], message.get("edit_date", 0)) + 1
        self.world.edits[(chat.id, message["message_id"])] += 1
        return public(message)

    def _edit_inline(self, params: dict[str, Any], new: dict[str, Any]) -> bool:
        key = str(params["inline_message_id"])
        current = self.world.inline_messages.setdefault(key, {})
        if all(current.get(k) == v for k, v in new.items()):
            raise bad_request(NOT_MODIFIED)
        current.update(new)
        return True


def document_json(stored: StoredFile) -> dict[str, Any]:
    """The Bot API ``Document`` of a stored file."""
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_name": stored.filename,
        "mime_type": stored.mime_type,
        "file_size": len(stored.data),
    }


def _set_markup(message: dict[str, Any], markup: Any) -> None:
    if markup:
        message["reply_markup"] = markup
    else:
        message.pop("reply_markup", None)


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height of an uploaded photo; Telegram refuses what is not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        raise bad_request("IMAGE_PROCESS_FAILED") from None
    if width + height > 10_000 or max(width, height) > 20 * min(width, height):
        raise bad_request("PHOTO_INVALID_DIMENSIONS")
    return width, height


def _photo_sizes(stored: StoredFile, width: int, height: int) -> list[dict[str, Any]]:
    """A thumbnail (≤ 90 px) and the photo itself (≤ 1280 px), as Telegram answers."""
    sizes = []
    for side in (90, 1280):
        scale = min(1.0, side / max(width, height))
        sizes.append(
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": max(1, round(width * scale)),
                "height": max(1, round(height * scale)),
                "file_size": len(stored.data),
            }
        )
    return sizes
