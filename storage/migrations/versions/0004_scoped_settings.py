"""Scoped settings: one ``settings`` table for every per-server, -channel and -user value.

Replaces ``servers.system_prompt``, ``channels.is_chat_channel`` and the
``plugin_settings`` table; their values move into ``settings`` (namespace ``core`` for
the prompt and chat channels, the plugin's name for its overrides) and come back on
downgrade.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types as they were at this revision (models.py may move on).
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)

_settings = sa.table(
    "settings",
    sa.column("scope", sa.String),
    sa.column("target_id", sa.BigInteger),
    sa.column("namespace", sa.String),
    sa.column("key", sa.String),
    sa.column("value", JSON),
    sa.column("updated_at", TIMESTAMP),
)
_servers = sa.table("servers", sa.column("id", PK), sa.column("system_prompt", sa.Text))
_channels = sa.table("channels", sa.column("id", PK), sa.column("is_chat_channel", sa.Boolean))
_plugins = sa.table(
    "plugin_settings",
    sa.column("server_id", PK),
    sa.column("plugin", sa.String),
    sa.column("enabled", sa.Boolean),
    sa.column("config", JSON),
    sa.column("updated_at", TIMESTAMP),
)


def upgrade() -> None:
    """Create ``settings``, move the old values in, drop the old places."""
    op.create_table(
        "settings",
        sa.Column("id", PK, nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=False),
        sa.Column("namespace", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", JSON, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "scope IN ('global', 'server', 'channel', 'user')", name=op.f("ck_settings_scope")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settings")),
        sa.UniqueConstraint(
            "scope",
            "target_id",
            "namespace",
            "key",
            name="uq_settings_scope_target_id_namespace_key",
        ),
    )
    rows = [*_old_prompts(), *_old_chat_channels(), *_old_plugin_values()]
    if rows:
        op.bulk_insert(_settings, rows)
    op.drop_table("plugin_settings")
    # Plain ALTER TABLE (SQLite >= 3.35 has DROP COLUMN): batch mode would copy and drop
    # ``servers``, and with foreign keys on that cascades into every child table.
    op.execute("ALTER TABLE servers DROP COLUMN system_prompt")
    op.execute("ALTER TABLE channels DROP COLUMN is_chat_channel")


def _row(scope: str, target: int, namespace: str, key: str, value: object) -> dict[str, object]:
    return {
        "scope": scope,
        "target_id": target,
        "namespace": namespace,
        "key": key,
        "value": value,
        "updated_at": datetime.now(UTC),
    }


def _old_prompts() -> list[dict[str, object]]:
    query = sa.select(_servers.c.id, _servers.c.system_prompt).where(
        _servers.c.system_prompt.is_not(None)
    )
    return [_row("server", pk, "core", "system_prompt", prompt) for pk, prompt in _all(query)]


def _old_chat_channels() -> list[dict[str, object]]:
    query = sa.select(_channels.c.id).where(_channels.c.is_chat_channel.is_(True))
    return [_row("channel", pk, "core", "chat", True) for (pk,) in _all(query)]


def _old_plugin_values() -> list[dict[str, object]]:
    rows = []
    query = sa.select(
        _plugins.c.server_id, _plugins.c.plugin, _plugins.c.enabled, _plugins.c.config
    )
    for server, plugin, enabled, config in _all(query):
        if enabled is not None:
            rows.append(_row("server", server, plugin, "enabled", bool(enabled)))
        for key, value in (config or {}).items():
            rows.append(_row("server", server, plugin, key, value))
    return rows


def _all(query: sa.Select[Any]) -> list[Any]:
    return list(op.get_bind().execute(query).all())


def downgrade() -> None:
    """Bring the old columns and table back with the values they can hold."""
    op.add_column("servers", sa.Column("system_prompt", sa.Text(), nullable=True))
    op.add_column(
        "channels",
        sa.Column("is_chat_channel", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "plugin_settings",
        sa.Column("id", PK, nullable=False),
        sa.Column("server_id", PK, nullable=False),
        sa.Column("plugin", sa.String(128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=True),
        sa.Column("config", JSON, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["servers.id"],
            name=op.f("fk_plugin_settings_server_id_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plugin_settings")),
        sa.UniqueConstraint("server_id", "plugin", name="uq_plugin_settings_server_id_plugin"),
    )
    _restore()
    op.drop_table("settings")


def _restore() -> None:
    bind = op.get_bind()
    query = sa.select(
        _settings.c.scope,
        _settings.c.target_id,
        _settings.c.namespace,
        _settings.c.key,
        _settings.c.value,
    ).where(_settings.c.scope.in_(("server", "channel")))
    plugins: dict[tuple[int, str], dict[str, object]] = {}
    for scope, target, namespace, key, value in bind.execute(query).all():
        if (namespace, key) == ("core", "system_prompt"):
            bind.execute(
                _servers.update().where(_servers.c.id == target).values(system_prompt=value)
            )
        elif (namespace, key) == ("core", "chat"):
            bind.execute(
                _channels.update().where(_channels.c.id == target).values(is_chat_channel=True)
            )
        elif scope == "server" and namespace != "core":
            entry = plugins.setdefault((target, namespace), {"enabled": None, "config": {}})
            if key == "enabled":
                entry["enabled"] = value
            else:
                entry["config"][key] = value  # type: ignore[index]
    rows = [
        {"server_id": server, "plugin": plugin, **entry, "updated_at": datetime.now(UTC)}
        for (server, plugin), entry in plugins.items()
    ]
    if rows:
        op.bulk_insert(_plugins, rows)
