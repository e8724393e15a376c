"""Retention of finished images: by age (``keep_days``) and total size (``max_store_mb``).

A sweep lists the images folder by job and picks the jobs whose files are older than
``keep_days``, then the oldest ones until the rest fits in ``max_store_mb``; jobs still
queued or running are left alone (their files are being written and recorded). It clears
those jobs' file paths in storage *before* deleting the files, so no row ever points at a
file that is gone (a crash in between leaves only an unreferenced file, which the next
sweep deletes). Rows of jobs that ended more than ``keep_days`` ago are deleted too, but
never today's: they count against the daily quotas.

It never decides who may do what and never talks to an image back end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from plugins.imagine.files import ImageFiles, JobFiles
from plugins.imagine.jobs import JobStore

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 3600.0
"""How often the plugin's background task sweeps (it also sweeps once at set-up)."""

_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep deleted: jobs whose files went, files, bytes, and rows."""

    jobs: int = 0
    files: int = 0
    bytes: int = 0
    rows: int = 0


async def sweep(
    files: ImageFiles,
    store: JobStore,
    *,
    keep_days: float,
    max_store_mb: float,
    now: datetime | None = None,
) -> Swept:
    """Delete what ``keep_days`` and ``max_store_mb`` (0: no limit) do not keep."""
    now = now or datetime.now(UTC)
    pending = {job.id for job in await store.unfinished()}
    settled = [job for job in await files.by_job() if job.job_id not in pending]
    doomed = _doomed(settled, keep_days, max_store_mb * _MB, now.timestamp())
    if doomed:
        await store.forget_results([job.job_id for job in doomed])
        await files.delete(path for job in doomed for path in job.paths)
    rows = 0
    if keep_days > 0:
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        rows = await store.delete_ended_before(min(now - timedelta(days=keep_days), midnight))
    swept = Swept(
        len(doomed),
        sum(len(job.paths) for job in doomed),
        sum(job.size for job in doomed),
        rows,
    )
    if swept != Swept():
        log.info(
            "image retention deleted %d files (%d bytes) of %d jobs and %d old job rows",
            swept.files,
            swept.bytes,
            swept.jobs,
            swept.rows,
        )
    return swept


def _doomed(jobs: list[JobFiles], keep_days: float, max_bytes: float, now: float) -> list[JobFiles]:
    """The jobs (oldest first in ``jobs``) whose files go: too old, then too many."""
    oldest_kept = now - keep_days * 86_400 if keep_days > 0 else float("-inf")
    doomed = [job for job in jobs if job.mtime < oldest_kept]
    kept = [job for job in jobs if job.mtime >= oldest_kept]
    if max_bytes > 0:
        total = sum(job.size for job in kept)
        for job in kept:
            if total <= max_bytes:
                break
            doomed.append(job)
            total -= job.size
    return doomed
