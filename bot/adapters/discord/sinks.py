"""Where a reply's messages go on Discord: a channel, or a deferred interaction.

A ``Sink`` posts a reply's messages and shows its errors (a channel reply or a plugin's
post to a channel, or an interaction's original response plus follow-ups);
``DiscordTarget`` adds the edits and deletes the shared renderer (``bot.render``) needs,
in discord.py's terms. Rate-limit (429) retries are discord.py's job: nothing here
catches them. This module never reads reply parts.
"""

from __future__ import annotations

import io
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import discord

from bot.render import KEEP, Keep, Upload
from core.events import Buttons

from .views import button_view

if TYPE_CHECKING:
    from discord.abc import MessageableChannel

MESSAGE_LIMIT = 2000  # characters per message


class Sink(Protocol):
    """Where a reply's messages go; ``post`` returns a message that can be edited."""

    key: Hashable
    upload_limit: int

    async def post(
        self,
        content: str,
        *,
        files: list[discord.File] | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        """Post one message of the reply."""
        ...

    async def error(self, message: str, placeholder: discord.Message | None) -> None:
        """Show a user-facing error (ephemerally where the platform allows)."""
        ...

    async def empty(self) -> None:
        """Called when a reply ends without posting anything."""
        ...


class ChannelSink:
    """Posts in a channel: a reply, whose first message answers ``answering``, or (none
    given) a message of its own (a plugin's post elsewhere)."""

    def __init__(
        self,
        channel: MessageableChannel,
        upload_limit: int,
        *,
        answering: discord.Message | None = None,
    ) -> None:
        self._channel = channel
        self._answering = answering
        self.key: Hashable = ("channel", channel.id)
        self.upload_limit = upload_limit

    async def post(
        self,
        content: str,
        *,
        files: list[discord.File] | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        """Send a message; a reply's first one answers the user's message (no ping)."""
        kwargs: dict[str, object] = {"content": content or None, "files": files or []}
        if view is not None:
            kwargs["view"] = view
        if self._answering is not None:
            kwargs["reference"] = self._answering.to_reference(fail_if_not_exists=False)
            kwargs["mention_author"] = False
            self._answering = None
        return await self._channel.send(**kwargs)  # type: ignore[call-overload]

    async def error(self, message: str, placeholder: discord.Message | None) -> None:
        """Channels have no ephemeral messages: the error is a visible reply."""
        text = f"⚠️ {message}"[:MESSAGE_LIMIT]
        if placeholder is not None:
            await placeholder.edit(content=text, view=None)  # a Cancel button ends here
        else:
            await self.post(text)

    async def empty(self) -> None:
        """Nothing to do: the user's message simply got no answer."""


class InteractionSink:
    """Replies to a deferred interaction: the original response first, then follow-ups."""

    def __init__(self, interaction: discord.Interaction, upload_limit: int) -> None:
        self._interaction = interaction
        self._original_used = False
        self.key: Hashable = ("interaction", interaction.id)
        limit = getattr(interaction, "filesize_limit", None)  # the interaction's own limit
        self.upload_limit = limit if isinstance(limit, int) and limit > 0 else upload_limit

    async def post(
        self,
        content: str,
        *,
        files: list[discord.File] | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        """The first post fills the original response; later posts are follow-ups."""
        if not self._original_used:
            self._original_used = True
            return await self._interaction.edit_original_response(
                content=content or None, attachments=files or [], view=view
            )
        webhook = self._interaction.followup
        if view is None:
            return await webhook.send(content, files=files or [], wait=True)
        return await webhook.send(content, files=files or [], view=view, wait=True)

    async def error(self, message: str, placeholder: discord.Message | None) -> None:
        """An ephemeral follow-up; an original response showing nothing useful goes first.

        After a deferral the first follow-up would *replace* the "thinking" response and
        could not be ephemeral, so an unused (or progress-only) original is deleted.
        """
        if not self._original_used or placeholder is not None:
            self._original_used = True
            await self._interaction.delete_original_response()
        await self._interaction.followup.send(message[:MESSAGE_LIMIT], ephemeral=True)

    async def empty(self) -> None:
        """A deferred interaction must be answered: say the command is done."""
        if not self._original_used:
            self._original_used = True
            await self._interaction.edit_original_response(content="Done.")


class DiscordTarget:
    """The shared renderer's ``Target`` on Discord: a sink plus edits and deletes."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self.key = sink.key
        self.upload_limit = sink.upload_limit

    async def post(
        self, content: str, *, files: Sequence[Upload] = (), buttons: Buttons | None = None
    ) -> discord.Message:
        """Post one message through the sink."""
        view = button_view(buttons) if buttons is not None else None
        return await self._sink.post(content, files=[_file(f) for f in files], view=view)

    async def edit(
        self,
        message: discord.Message,
        *,
        content: str | Keep | None = KEEP,
        files: Sequence[Upload] | None = None,
        buttons: Buttons | Keep | None = KEEP,
    ) -> None:
        """Edit a sent message (its content, attachments and buttons as asked)."""
        fields: dict[str, Any] = {}
        if not isinstance(content, Keep):
            fields["content"] = content
        if files is not None:
            fields["attachments"] = [_file(f) for f in files]
        if not isinstance(buttons, Keep):
            fields["view"] = button_view(buttons) if buttons is not None else None
        await message.edit(**fields)

    async def delete(self, message: discord.Message) -> None:
        """Delete a sent message."""
        await message.delete()

    async def error(self, message: str, placeholder: discord.Message | None) -> None:
        """Through the sink (ephemeral for interactions)."""
        await self._sink.error(message, placeholder)

    async def empty(self) -> None:
        """Through the sink (an interaction must be answered)."""
        await self._sink.empty()


def _file(upload: Upload) -> discord.File:
    if upload.data is not None:
        return discord.File(io.BytesIO(upload.data), filename=upload.filename)
    assert upload.path is not None
    return discord.File(upload.path, filename=upload.filename)
