"""The ``imagine`` plugin's own table, ``image_jobs`` (its migrations: ``migrations/``).

One row per /imagine (or generate_image) request, with its results. The plugin's
migrations create it (``alembic_version_imagine`` records how far); the core's schema
knows nothing of it. Rows belong to the core's servers, users and channels (foreign keys
by name; deleting a server deletes its jobs).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from storage import models
from storage.models import NAMING_CONVENTION, PK, JSONType, Timestamp, utcnow

metadata = MetaData(naming_convention=NAMING_CONVENTION)
# The core's tables that image_jobs refers to, copied in so its foreign keys resolve
# (the core's migrations own them; nothing here creates or changes them).
for _core in (models.servers, models.users, models.channels):
    _core.to_metadata(metadata)


def _fk(name: str, target: str) -> Column[int]:
    return Column(name, PK, ForeignKey(target, ondelete="CASCADE"), nullable=False)


IMAGE_JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
"""The states of an image job; queued and running ones are re-enqueued after a crash."""

image_jobs = Table(
    "image_jobs",
    metadata,
    Column("id", String(32), primary_key=True),  # uuid4 hex, also in file names and buttons
    Column("status", String(16), nullable=False),
    _fk("server_id", "servers.id"),
    _fk("user_id", "users.id"),
    _fk("channel_id", "channels.id"),
    Column("params", JSONType, nullable=False, default=dict),
    Column("seed", BigInteger, nullable=False),  # seeds reach 2**32 - 1: too big for INTEGER
    Column("count", Integer, nullable=False),
    Column("worker", String(256), nullable=True),
    Column("results", JSONType, nullable=False, default=list),
    Column("sha256", JSONType, nullable=False, default=list),
    Column("error", Text, nullable=True),
    Column("created_at", Timestamp, nullable=False, default=utcnow),
    Column("started_at", Timestamp, nullable=True),
    Column("finished_at", Timestamp, nullable=True),
    CheckConstraint(f"status IN {IMAGE_JOB_STATUSES!r}", name="status"),
    # The daily quotas count one server's, one user's or everybody's jobs since midnight;
    # retention deletes by age; recovery reads by status.
    Index("ix_image_jobs_server_id_created_at", "server_id", "created_at"),
    Index("ix_image_jobs_user_id_created_at", "user_id", "created_at"),
    Index("ix_image_jobs_created_at", "created_at"),
    Index("ix_image_jobs_status", "status"),
)
