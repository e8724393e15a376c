"""Where finished images live: ``<data_dir>/images/YYYY-MM-DD/<job>-<i>.png``.

Writes the PNG bytes a back end returns and computes their SHA-256 digests (stored with
the job), and reads a job's first image back for variations and upscales. File I/O runs
in a thread so the event loop never blocks on the disk. It never decodes images and never
deletes anything.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path


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
