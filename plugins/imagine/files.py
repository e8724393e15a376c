"""Where finished images live: ``<data_dir>/images/YYYY-MM-DD/<job>-<i>.png``.

Writes the PNG bytes a back end returns and computes their SHA-256 digests (stored with
the job), reads a job's first image back for variations and upscales, and lists and
deletes images by job for retention. File I/O runs in a thread so the event loop never
blocks on the disk. It never decodes images, never touches storage, and never deletes a
file whose name is not one it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

_NAME = re.compile(r"([0-9a-f]{32})-\d+\.(?:png|part)")


@dataclass(frozen=True, slots=True)
class JobFiles:
    """One job's files on disk: their paths, total size and newest modification time."""

    job_id: str
    paths: tuple[Path, ...]
    size: int
    mtime: float


class ImageFiles:
    """The images folder under the data directory."""

    def __init__(self, data_dir: Path) -> None:
        """Images go under ``data_dir / "images"`` (created when first needed)."""
        self.root = data_dir / "images"

    async def save(self, job_id: str, pngs: Sequence[bytes]) -> list[tuple[Path, str]]:
        """Write one job's PNGs; returns ``(path, sha256 hex)`` per image, in order."""
        return await asyncio.to_thread(self._save, job_id, list(pngs))

    async def read(self, path: str | Path) -> bytes | None:
        """The bytes of a stored image, or None when the file is gone."""
        try:
            return await asyncio.to_thread(Path(path).read_bytes)
        except FileNotFoundError:
            return None

    async def by_job(self) -> list[JobFiles]:
        """Every job's files (including half-written ones), oldest job first."""
        return await asyncio.to_thread(self._by_job)

    async def delete(self, paths: Iterable[Path]) -> None:
        """Delete these files (already gone is fine) and day folders left empty."""
        await asyncio.to_thread(self._delete, list(paths))

    def _save(self, job_id: str, pngs: list[bytes]) -> list[tuple[Path, str]]:
        folder = self.root / datetime.now(UTC).strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        saved = []
        for index, png in enumerate(pngs):
            path = folder / f"{job_id}-{index}.png"
            partial = path.with_suffix(".part")
            partial.write_bytes(png)
            partial.replace(path)  # readers never see half a file
            saved.append((path, hashlib.sha256(png).hexdigest()))
        return saved

    def _by_job(self) -> list[JobFiles]:
        found: dict[str, list[tuple[Path, int, float]]] = {}
        for path in self.root.glob("*/*"):
            match = _NAME.fullmatch(path.name)
            if match is None:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # deleted meanwhile
                continue
            found.setdefault(match[1], []).append((path, stat.st_size, stat.st_mtime))
        jobs = [
            JobFiles(
                job_id,
                tuple(sorted(path for path, _, _ in files)),
                sum(size for _, size, _ in files),
                max(mtime for _, _, mtime in files),
            )
            for job_id, files in found.items()
        ]
        return sorted(jobs, key=lambda job: (job.mtime, job.job_id))

    def _delete(self, paths: list[Path]) -> None:
        folders = set()
        for path in paths:
            path.unlink(missing_ok=True)
            folders.add(path.parent)
        # Today's and yesterday's folders stay: ``_save`` may be about to write into one.
        recent = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
        for folder in folders:
            if folder.parent == self.root and folder.name < recent:
                with contextlib.suppress(OSError):  # not empty (or gone): keep it
                    folder.rmdir()
