"""The plain values ``Storage`` hands out (re-exported by ``storage.repository``).

Frozen, slotted dataclasses only: no database access, no behaviour, no platform types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Identity:
    """The surrogate keys of one origin's server, channel, user and conversation."""

    server_pk: int
    channel_pk: int
    user_pk: int
    conversation_pk: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message of a conversation's history."""

    role: str
    content: str
    token_count: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited action (allowed or refused)."""

    server_pk: int
    user_pk: int | None
    action: str
    target: str
    allowed: bool
    detail: dict[str, Any]
    created_at: datetime
