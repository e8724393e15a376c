"""Python in a fresh bubblewrap sandbox per run: no network, nothing of the host's.

Each run gets new namespaces of every kind (no network at all, its own PID space: when
the run ends, everything it started is gone), a cleared environment, read-only binds of
only the interpreter, the runner and the offered packages, and a size-limited tmpfs as
its working directory. The host adds resource limits (CPU seconds, address space, file
size, open files), a cgroup per run (processes, memory), a wall-clock timeout and capped
output. If any of that cannot be had, ``Sandbox.run`` raises ``SandboxUnavailable``: it
never runs code unsandboxed. Nothing here knows about chat.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from core.errors import SandboxUnavailable
from sandbox import cgroups

RUNNER = Path(__file__).with_name("_runner.py")
# What "numpy and matplotlib importable inside" takes: these distributions' top folders.
OFFERED = (
    "numpy",
    "matplotlib",
    "contourpy",
    "cycler",
    "fonttools",
    "kiwisolver",
    "packaging",
    "pillow",
    "pyparsing",
    "python-dateutil",
    "six",
)
_READ_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class Limits:
    """What one run may use."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    processes: int = 32
    file_mb: int = 16
    open_files: int = 128
    tmpfs_mb: int = 64
    output_chars: int = 8000


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended and what it left: output (cut to the limit), images."""

    exit_code: int
    output: str
    duration_s: float
    truncated: bool = False
    timed_out: bool = False
    images: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)


class Sandbox:
    """Runs Python code in bubblewrap, at most ``concurrency`` runs at once."""

    def __init__(self, limits: Limits | None = None, *, concurrency: int = 2) -> None:
        self.limits = limits or Limits()
        self._slots = asyncio.Semaphore(concurrency)
        self._unavailable: str | None = None
        self._checked = False

    def why_unavailable(self) -> str | None:
        """Why code cannot run here (bubblewrap or cgroups missing), or None."""
        if not self._checked:
            self._unavailable = _why_unavailable()
            self._checked = True
        return self._unavailable

    async def run(self, code: str) -> RunResult:
        """Run ``code``; waits for a free slot first.

        Raises:
            SandboxUnavailable: No sandbox can be made here (the reason says why).
        """
        reason = await asyncio.to_thread(self.why_unavailable)
        if reason is not None:
            raise SandboxUnavailable(f"Code cannot run here: {reason}.")
        async with self._slots:
            return await self._run(code)

    async def _run(self, code: str) -> RunResult:
        limits = self.limits
        group = cgroups.create(max_pids=limits.processes, memory_bytes=limits.memory_mb << 20)
        images_read, images_write = os.pipe()
        started = time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec(
                *command(limits, images_fd=images_write),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(images_write,),
                # bubblewrap's own process is the sandbox's pid 1, whose environment the
                # code can read (/proc/1/environ): it must not inherit the bot's.
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                start_new_session=True,
                preexec_fn=_confine(limits, group),
            )
        except BaseException:
            os.close(images_read)
            await asyncio.to_thread(group.kill_all)
            raise
        finally:
            os.close(images_write)
        # Read the images while the run goes on: a full pipe would stall the runner.
        reading = asyncio.ensure_future(asyncio.to_thread(_read_images, images_read))
        try:
            output, truncated, timed_out = await _collect(process, code, limits)
        finally:
            _kill(process)
            await asyncio.to_thread(group.kill_all)
            images = await reading
            os.close(images_read)
        code_ = process.returncode if process.returncode is not None else -signal.SIGKILL
        return RunResult(
            exit_code=code_ if code_ >= 0 else 128 - code_,
            output=output,
            duration_s=time.monotonic() - started,
            truncated=truncated,
            timed_out=timed_out,
            images=images,
        )


def command(limits: Limits, *, images_fd: int = 3) -> list[str]:
    """The bubblewrap command line of one run."""
    python = Path(sys.executable).resolve()
    prefix = Path(sys.base_prefix).resolve()
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
    args += ["--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns"]
    args += ["--hostname", "sandbox", *_system()]
    if not prefix.is_relative_to("/usr"):
        args += ["--ro-bind", str(prefix), str(prefix)]
    args += ["--ro-bind", str(RUNNER), "/sandbox/runner.py"]
    for name, folder in offered_folders():
        args += ["--ro-bind", str(folder), f"/sandbox/site/{name}"]
    size = str(limits.tmpfs_mb << 20)
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/work"]
    if Path("/etc/fonts").is_dir():  # fontconfig's settings, for matplotlib's text
        args += ["--ro-bind", "/etc/fonts", "/etc/fonts"]
    args += ["--remount-ro", "/"]  # bubblewrap's own root is a tmpfs: no writes there
    args += ["--chdir", "/work", "--setenv", "HOME", "/work", "--setenv", "PATH", "/usr/bin"]
    args += ["--setenv", "MPLBACKEND", "Agg", "--setenv", "MPLCONFIGDIR", "/tmp"]
    args += ["--setenv", "OPENBLAS_NUM_THREADS", "1", "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    return [*args, "--", str(python), "-I", "-S", "/sandbox/runner.py", str(images_fd)]


def _system() -> list[str]:
    """Read-only binds of the system's programs and libraries (``/usr``, merged or not)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for link in ("/bin", "/lib", "/lib64", "/sbin"):
        target = Path(link)
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), link]
        elif target.is_dir():
            args += ["--ro-bind", link, link]
    return args


@functools.cache
def offered_folders() -> list[tuple[str, Path]]:
    """The top folders (and single modules) of the offered distributions installed here."""
    found: dict[str, Path] = {}
    for dist_name in OFFERED:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue
        for file in dist.files or ():
            top = file.parts[0]
            if top.endswith((".dist-info", ".data")) or top in ("..", "bin") or top in found:
                continue
            path = Path(str(dist.locate_file(top)))
            if path.is_dir() or (path.suffix == ".py" and path.is_file()):
                found[top] = path
    return sorted(found.items())


def _why_unavailable() -> str | None:
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    probe = subprocess.run(
        ["bwrap", "--unshare-all", "--die-with-parent", *_system(), "--", "true"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    if probe.returncode != 0:
        detail = probe.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        return f"bubblewrap cannot create namespaces ({detail[0][:120]})"
    return cgroups.available()


def _confine(limits: Limits, group: cgroups.RunGroup) -> Callable[[], None]:
    """What the child does before it becomes bubblewrap: join the run's cgroups, limits."""
    memory = limits.memory_mb << 20

    def confine() -> None:
        group.join(os.getpid())
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return confine


async def _collect(
    process: asyncio.subprocess.Process, code: str, limits: Limits
) -> tuple[str, bool, bool]:
    """Feed the code, read the output up to the limit (the rest is drained), wait."""
    assert process.stdin is not None and process.stdout is not None
    cap = limits.output_chars * 4  # bytes; cut to characters after decoding
    kept = bytearray()
    seen = 0

    async def feed() -> None:
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(code.encode("utf-8", "replace"))
            await process.stdin.drain()
        process.stdin.close()

    async def read() -> None:
        nonlocal seen
        assert process.stdout is not None
        while chunk := await process.stdout.read(_READ_CHUNK):
            seen += len(chunk)
            if len(kept) < cap:
                kept.extend(chunk[: cap - len(kept)])
        await process.wait()

    timed_out = False
    try:
        async with asyncio.timeout(limits.wall_s):
            await asyncio.gather(feed(), read())
    except TimeoutError:
        timed_out = True
    text = kept.decode("utf-8", "replace")
    truncated = seen > len(kept) or len(text) > limits.output_chars
    return text[: limits.output_chars], truncated, timed_out


def _read_images(fd: int) -> tuple[tuple[str, bytes], ...]:
    """The runner's images (JSON lines on its pipe); anything malformed is skipped."""
    found: list[tuple[str, bytes]] = []
    with os.fdopen(os.dup(fd), "r", encoding="ascii", errors="replace") as channel:
        for line in channel.read(64 << 20).splitlines()[:4]:
            try:
                item = json.loads(line)
                found.append((str(item["name"])[:100], base64.b64decode(item["data"])))
            except (ValueError, KeyError, TypeError, binascii.Error):
                continue
    return tuple(found)


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def describe(result: RunResult) -> Sequence[str]:
    """Notes on how a run ended, for people: time-outs, cut output, exit codes."""
    notes = []
    if result.timed_out:
        notes.append("stopped: it ran past the time limit")
    if result.truncated:
        notes.append("the output was cut short")
    if result.exit_code and not result.timed_out:
        notes.append(f"exit code {result.exit_code}")
    return notes
