"""The base of every settings model: unknown keys are errors, so typos never pass silently.

Each layer declares its own sections on this base (``agents.config``, ``workers.config``,
a plugin's config model); ``bot.config.Settings`` composes them. Nothing here reads files
or the environment.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scope = Literal["global", "server", "channel", "user"]


class Section(BaseModel):
    """A settings section: every key declared with its default; unknown keys refused."""

    model_config = ConfigDict(extra="forbid")


def server(default: Any = None, **kwargs: Any) -> Any:
    """A plugin setting a server's admins may change (``/plugins config NAME KEY VALUE``).

    Every field declared without a scope is the operator's alone (``config.toml``, the
    environment): a server can never point a plugin at another broker or model.
    """
    return Field(default, json_schema_extra={"scope": "server"}, **kwargs)


def channel(default: Any = None, **kwargs: Any) -> Any:
    """A plugin setting a server's admins may change per channel (``/plugins config``,
    run in that channel); a channel's value beats the server's default."""
    return Field(default, json_schema_extra={"scope": "channel"}, **kwargs)


def user(default: Any = None, **kwargs: Any) -> Any:
    """A plugin setting each user chooses for themselves (``/prefs NAME KEY VALUE``)."""
    return Field(default, json_schema_extra={"scope": "user"}, **kwargs)


def scope_of(model: type[BaseModel], key: str) -> Scope:
    """The scope a field was declared with (``server()``, ``channel()``, ``user()``), or
    ``"global"``."""
    extra = model.model_fields[key].json_schema_extra
    scope = extra.get("scope") if isinstance(extra, dict) else None
    return scope if scope in ("server", "channel", "user") else "global"  # type: ignore[return-value]
