"""The fake Bot API's value types and Telegram's own text rules.

``User`` and ``Chat`` are what tests hold; ``ApiError`` is how a method refuses (it becomes
``{"ok": false, "error_code": …, "description": …, "parameters": …}``); ``format_text``
applies Telegram's rules for message text and captions: ``parse_mode=HTML`` parsed with the
stdlib ``html.parser`` into plain text plus entities (only Telegram's tags), whitespace
trimmed at both ends, then the length limit counted on the parsed result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64

# Telegram's HTML tags and the entity type each one makes.
HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG_START = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*")


class ApiError(Exception):
    """A Bot API refusal: HTTP ``status``, Telegram's ``description`` and ``parameters``."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        """The JSON body Telegram answers with."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(what: str, parameters: dict[str, Any] | None = None) -> ApiError:
    """``400 Bad Request: <what>``."""
    return ApiError(400, f"Bad Request: {what}", parameters)


@dataclass(frozen=True)
class User:
    """A Telegram user (``is_bot`` only for the bot itself)."""

    id: int
    first_name: str
    username: str | None = None
    is_bot: bool = False

    def to_json(self) -> dict[str, Any]:
        """The Bot API ``User`` object."""
        data: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        if not self.is_bot:
            data["language_code"] = "en"
        return data


@dataclass(frozen=True)
class Chat:
    """A chat: ``private`` (``id == user.id``), ``group``, ``supergroup`` or ``channel``."""

    id: int
    type: str
    title: str | None = None
    first_name: str | None = None
    username: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The Bot API ``Chat`` object."""
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        for key in ("title", "first_name", "username"):
            if (value := getattr(self, key)) is not None:
                data[key] = value
        return data


@dataclass
class Upload:
    """A file part of a multipart request."""

    filename: str
    data: bytes
    content_type: str

    def summary(self) -> dict[str, Any]:
        """What ``FakeBotAPI.calls`` shows instead of the bytes."""
        return {"filename": self.filename, "size": len(self.data)}


@dataclass
class StoredFile:
    """A file Telegram holds (uploaded by a user or the bot): what ``getFile`` serves."""

    file_id: str
    file_unique_id: str
    data: bytes
    filename: str
    mime_type: str
    kind: str  # "photo", "document", "voice", "sticker"
    file_path: str

    def to_json(self) -> dict[str, Any]:
        """The Bot API ``File`` object (``file_path`` relative, as Telegram gives it)."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


@dataclass
class Formatted:
    """Text after Telegram's parsing: plain ``text``, its ``entities``, the raw ``html``."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)
    html: str | None = None


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (how entity offsets and lengths are counted)."""
    return len(text.encode("utf-16-le")) // 2


def format_text(
    text: Any,
    parse_mode: Any,
    entities: Any,
    *,
    caption: bool = False,
    allow_empty: bool = False,
) -> Formatted:
    """Apply Telegram's rules to a message text (or, with ``caption``, a caption).

    ``parse_mode`` ``HTML`` is parsed; ``Markdown``/``MarkdownV2`` are accepted but not
    parsed (the text is kept as sent); without one, ``entities`` are taken as given.
    Raises ``ApiError`` for bad HTML, an empty text (unless ``allow_empty``) or one over
    4096 characters (captions: 1024).
    """
    raw = "" if text is None else str(text)
    mode = str(parse_mode or "").lower()
    html: str | None = None
    if mode == "html":
        parser = _TelegramHTML(raw)
        parser.run()
        plain, found, html = "".join(parser.parts), parser.entities, raw
    elif mode:
        if mode not in ("markdown", "markdownv2"):
            raise bad_request(f"unsupported parse_mode {parse_mode}")
        plain, found = raw, []
    else:
        plain, found = raw, list(entities or [])
    result = _trim(Formatted(plain, found, html))
    if not result.text and not allow_empty:
        raise bad_request("message text is empty")
    if len(result.text) > (CAPTION_LIMIT if caption else TEXT_LIMIT):
        raise bad_request("message caption is too long" if caption else "message is too long")
    return result


def check_reply_markup(markup: Any) -> None:
    """Refuse inline buttons whose ``callback_data`` is not 1..64 bytes."""
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        return
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
    for row in rows:
        for button in row:
            if "callback_data" in button:
                size = len(str(button["callback_data"]).encode())
                if not 1 <= size <= CALLBACK_DATA_LIMIT:
                    raise bad_request("BUTTON_DATA_INVALID")


def callback_data_of(markup: Any) -> list[str]:
    """Every ``callback_data`` on an inline keyboard, row by row."""
    if not isinstance(markup, dict):
        return []
    return [
        str(button["callback_data"])
        for row in markup.get("inline_keyboard", [])
        for button in row
        if "callback_data" in button
    ]


def _trim(formatted: Formatted) -> Formatted:
    """Strip whitespace at both ends, as Telegram does, moving the entities with it."""
    text = formatted.text
    stripped = text.strip()
    if stripped == text:
        return formatted
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    end = utf16_len(stripped)
    entities = []
    for entity in formatted.entities:
        start = max(entity["offset"] - lead, 0)
        stop = min(entity["offset"] + entity["length"] - lead, end)
        if stop > start:
            entities.append({**entity, "offset": start, "length": stop - start})
    return Formatted(stripped, entities, formatted.html)


class _TelegramHTML(HTMLParser):
    """Telegram's HTML dialect on top of ``html.parser``: allowed tags, strict nesting."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.parts: list[str] = []
        self.entities: list[dict[str, Any]] = []
        self._offset = 0
        self._stack: list[tuple[str, dict[str, Any] | None, int]] = []
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]

    def run(self) -> None:
        """Parse the whole source, raising ``ApiError`` at the first problem."""
        for match in re.finditer("<", self.source):
            if not _TAG_START.match(self.source, match.start()):
                self._fail("Unexpected end of name token", match.start())
        self.feed(self.source)
        self.close()
        if self._stack:
            tag = self._stack[-1][0]
            raise bad_request(
                f"can't parse entities: Can't find end tag corresponding to start tag \"{tag}\""
            )
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self._offset += utf16_len(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_TAGS:
            self._fail(f'Unsupported start tag "{tag}"')
        values = {name: value or "" for name, value in attrs}
        if tag == "span" and values.get("class") != "tg-spoiler":
            self._fail('Tag "span" must have class "tg-spoiler"')
        entity: dict[str, Any] | None = {"type": HTML_TAGS[tag]}
        if tag == "a":
            entity = {"type": "text_link", "url": values["href"]} if values.get("href") else None
        elif tag == "blockquote" and "expandable" in values:
            entity = {"type": "expandable_blockquote"}
        elif tag == "tg-emoji":
            entity = {"type": "custom_emoji", "custom_emoji_id": values.get("emoji-id", "")}
        elif tag == "code" and self._stack and self._stack[-1][0] == "pre":
            language = values.get("class", "")
            pre = self._stack[-1][1]
            if language.startswith("language-") and pre is not None:
                pre["language"] = language.removeprefix("language-")
                entity = None
        self._stack.append((tag, entity, self._offset))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._fail(f'Unsupported start tag "{tag}/"')

    def handle_endtag(self, tag: str) -> None:
        if not self._stack:
            self._fail("Unexpected end tag")
        open_tag, entity, start = self._stack[-1]
        if open_tag != tag:
            self._fail("Unmatched end tag", after=f', expected "</{open_tag}>", found "</{tag}>"')
        self._stack.pop()
        if entity is not None and self._offset > start:
            self.entities.append({**entity, "offset": start, "length": self._offset - start})

    def handle_comment(self, data: str) -> None:
        self._fail('Unsupported start tag "!--"')

    def handle_decl(self, decl: str) -> None:
        self._fail(f'Unsupported start tag "!{decl.split()[0] if decl else ""}"')

    def handle_pi(self, data: str) -> None:
        self._fail('Unsupported start tag "?"')

    def unknown_decl(self, data: str) -> None:
        self._fail('Unsupported start tag "!["')

    def _fail(self, what: str, index: int | None = None, after: str = "") -> None:
        if index is None:
            line, column = self.getpos()
            index = self._line_starts[line - 1] + column
        where = len(self.source[:index].encode())
        raise bad_request(f"can't parse entities: {what} at byte offset {where}{after}")
