"""What the fake Discord records: REST calls, uploaded files and dispatched interactions.

Tests read these to assert what the bot did; the servers only append to them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Channel, Member, User


@dataclass
class UploadedFile:
    """One file of a multipart request."""

    field: str
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        """Length in bytes."""
        return len(self.data)


@dataclass
class Call:
    """One REST request the fake received, with the status it answered."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[UploadedFile]
    status: int = 0
    at: float = field(default_factory=time.monotonic)
    reason: str | None = None  # the audit-log reason (``X-Audit-Log-Reason``), if sent

    def __repr__(self) -> str:
        return f"<Call {self.method} {self.path} -> {self.status}>"


@dataclass
class Interaction:
    """An interaction the fake dispatched (``invoke_command`` / ``press_button``).

    ``responses`` collects the REST calls made with its id or token: the callback,
    ``@original`` edits and follow-ups; ``original`` is the response message, if any
    (None again once deleted).
    """

    id: int
    token: str
    type: int
    payload: dict[str, Any]
    channel: Channel
    user: User
    member: Member | None = None
    message: dict[str, Any] | None = None
    callback_type: int | None = None
    original: dict[str, Any] | None = None
    followups: list[dict[str, Any]] = field(default_factory=list)
    responses: list[Call] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)

    @property
    def acknowledged(self) -> bool:
        """Whether the interaction callback has been answered."""
        return self.callback_type is not None
