"""Who is calling and from where, as the core identified them: the ``Caller``.

Shared by the plugin port (contexts, tool requirements) and the administration port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.events import Origin

if TYPE_CHECKING:
    from core.adapter import Actions


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling and from where, as the core identified them (never the model)."""

    origin: Origin
    server_pk: int
    user_pk: int
    channel_pk: int
    conversation_pk: int = 0
    # What the caller's platform lets a plugin do (delete, time out, post); None: nothing.
    actions: Actions | None = field(default=None, compare=False, repr=False)

    @property
    def is_admin(self) -> bool:
        """Whether the platform says the caller administers the server."""
        return self.origin.is_admin
