"""A control group per sandbox run: a hard cap on processes (fork bombs) and memory.

``RLIMIT_NPROC`` cannot do this: root is exempt from it, and for anyone else it counts
every process of the user, the bot's own threads included. A cgroup counts exactly the
run's processes. cgroup v1 (``/sys/fs/cgroup/pids`` and ``/sys/fs/cgroup/memory``) and
v2 (a delegated subtree with the ``pids`` controller) are both used where writable;
where neither is, ``available()`` says why and the sandbox refuses to run code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
GROUP = "atelier-sandbox"


@dataclass(frozen=True, slots=True)
class RunGroup:
    """The cgroup directories of one run (``pids`` and maybe ``memory``)."""

    directories: tuple[Path, ...]

    def join(self, pid: int) -> None:
        """Put process ``pid`` (and so its children) in the run's groups."""
        for directory in self.directories:
            (directory / "cgroup.procs").write_text(str(pid))

    def kill_all(self) -> None:
        """Kill every process left in the run's groups, then remove the groups."""
        for directory in self.directories:
            for _ in range(50):
                pids = _pids(directory)
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.01)
            with contextlib.suppress(OSError):
                directory.rmdir()


def available() -> str | None:
    """Why per-run cgroups cannot be made here, or None when they can."""
    try:
        group = create(max_pids=8, memory_bytes=None)
    except OSError as exc:
        return f"no writable pids cgroup ({exc.strerror or exc})"
    group.kill_all()
    return None


def create(*, max_pids: int, memory_bytes: int | None) -> RunGroup:
    """Fresh groups for one run, limited to ``max_pids`` processes (and memory).

    Raises:
        OSError: No writable pids controller.
    """
    name = uuid.uuid4().hex[:12]
    v1 = ROOT / "pids"
    if (v1 / "pids.max").exists() or (v1 / "cgroup.procs").exists():
        pids = _make(v1 / GROUP / name)
        (pids / "pids.max").write_text(str(max_pids))
        made = [pids]
        memory = ROOT / "memory"
        if memory_bytes is not None and (memory / "cgroup.procs").exists():
            with contextlib.suppress(OSError):
                mem = _make(memory / GROUP / name)
                (mem / "memory.limit_in_bytes").write_text(str(memory_bytes))
                made.append(mem)
        return RunGroup(tuple(made))
    v2 = ROOT / GROUP
    controllers = (ROOT / "cgroup.controllers").read_text().split()
    if "pids" not in controllers:
        raise OSError(0, "the pids controller is not enabled")
    _make(v2)
    (v2 / "cgroup.subtree_control").write_text(
        "+pids" + (" +memory" if "memory" in controllers else "")
    )
    run = _make(v2 / name)
    (run / "pids.max").write_text(str(max_pids))
    if memory_bytes is not None and (run / "memory.max").exists():
        (run / "memory.max").write_text(str(memory_bytes))
    return RunGroup((run,))


def _make(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pids(directory: Path) -> list[int]:
    try:
        return [int(line) for line in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []
