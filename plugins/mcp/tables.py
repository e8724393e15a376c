"""The ``mcp`` plugin's own table (its migrations: ``migrations/``).

``mcp_choices``: what a server's admins chose for one configured MCP server — on or off
here, and the tools they turned off (a JSON list of the server's own tool names). A
server with no row has every MCP server off. Rows belong to the core's servers.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from storage import models
from storage.models import NAMING_CONVENTION, PK, Timestamp, utcnow

metadata = MetaData(naming_convention=NAMING_CONVENTION)
models.servers.to_metadata(metadata)  # so the foreign key resolves (the core owns it)

mcp_choices = Table(
    "mcp_choices",
    metadata,
    Column("server_id", PK, ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
    Column("mcp_name", String(24), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("denied_tools", Text, nullable=False, default="[]"),
    Column("updated_at", Timestamp, nullable=False, default=utcnow, onupdate=utcnow),
    PrimaryKeyConstraint("server_id", "mcp_name", name="pk_mcp_choices"),
)
