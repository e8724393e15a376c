"""The base of every settings model: unknown keys are errors, so typos never pass silently.

Each layer declares its own sections on this base (``agents.config``, ``workers.config``,
a plugin's config model); ``bot.config.Settings`` composes them. Nothing here reads files
or the environment.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scope = Literal["global", "server"]


class Section(BaseModel):
    """A settings section: every key declared with its default; unknown keys refused."""

    model_config = ConfigDict(extra="forbid")


def server(default: Any = None, **kwargs: Any) -> Any:
    """A plugin setting a server's admins may change (``/plugins config NAME KEY VALUE``).

    Every other field of a plugin's config model is the operator's alone (``config.toml``,
    the environment): a server can never point a plugin at another broker or model.
    """
    return Field(default, json_schema_extra={"scope": "server"}, **kwargs)


def scope_of(model: type[BaseModel], key: str) -> Scope:
    """``"server"`` for fields declared with ``server()``, else ``"global"``."""
    extra = model.model_fields[key].json_schema_extra
    return "server" if isinstance(extra, dict) and extra.get("scope") == "server" else "global"
