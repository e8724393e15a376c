"""Built-in ``code`` plugin: Python in a sandbox, for the agent (``run_python``) and ``/run``.

Every run is a fresh bubblewrap sandbox (``sandbox/``): no network, nothing of the bot's,
limited CPU, memory, processes, files and time. numpy and matplotlib are importable; a
figure (or an image file written to the working directory) comes back as an image. Off
unless a server's admins enable it (``/plugins enable code``); where bubblewrap or
cgroups are missing it refuses with the reason and never runs code unsandboxed. Each
user may run ``runs_per_minute``; at most ``concurrent`` sandboxes run at once, the rest
wait their turn.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import InputRejected, PluginError, RateLimited
from core.events import Image, ReplyPart, Text
from core.plugin import CommandContext, Option, Plugin, PluginContext, ToolContext, ToolResult
from plugins.code.config import CodeSettings
from sandbox import Limits, RunResult, Sandbox
from sandbox.bwrap import describe

log = logging.getLogger(__name__)

plugin = Plugin(
    "code",
    "Runs Python in a sandbox (no network; numpy, matplotlib): /run and the agent",
    version="1.0.0",
    config_model=CodeSettings,
    enabled_by_default=False,
    call_timeout_s=lambda config: config.wall_s * 4 + 30,  # waiting for a slot, then a run
)

KEPT_IMAGES = 200  # images kept on disk for replies (oldest removed first)
MAX_USERS = 10_000
_FENCE = re.compile(r"^\s*```[\w+-]{0,20}[ \t]*\n?(.*?)\n?```\s*$", re.DOTALL)


@dataclass(slots=True)
class _State:
    """This load's sandbox, image folder and per-user run times."""

    sandbox: Sandbox | None = None
    images: Path | None = None
    runs: OrderedDict[tuple[int, int], list[float]] = field(default_factory=OrderedDict)


_state = _State()


@plugin.on_setup
async def _setup(ctx: PluginContext) -> None:
    """Make the sandbox (a missing bubblewrap is said on each run, not here)."""
    settings = _settings(ctx.config)
    limits = Limits(
        wall_s=settings.wall_s,
        cpu_s=settings.cpu_s,
        memory_mb=settings.memory_mb,
        processes=settings.processes,
        tmpfs_mb=settings.tmpfs_mb,
        output_chars=settings.output_chars,
    )
    _state.sandbox = Sandbox(limits, concurrency=settings.concurrent)
    _state.images = ctx.data_dir / "code"
    _state.images.mkdir(parents=True, exist_ok=True)
    reason = _state.sandbox.why_unavailable()
    if reason is not None:
        log.warning("code plugin: code cannot run here: %s", reason)


def _settings(config: object) -> CodeSettings:
    if not isinstance(config, CodeSettings):
        raise PluginError("code", "started without its config")
    return config


async def _run(code: str, server_pk: int, user_pk: int, settings: CodeSettings) -> RunResult:
    if _state.sandbox is None:
        raise PluginError("code", "not set up")
    code = unfenced(code)
    if not code.strip():
        raise InputRejected("Give some Python to run, e.g. /run print(2 + 3)")
    if len(code) > settings.max_code_chars:
        raise InputRejected(
            f"The code is {len(code)} characters; the limit is {settings.max_code_chars}."
        )
    _take_turn(server_pk, user_pk, settings.runs_per_minute)
    return await _state.sandbox.run(code)


def unfenced(text: str) -> str:
    """The code inside a Markdown code block (```python ... ```), or the text as it is."""
    found = _FENCE.match(text)
    return found.group(1) if found else text


def _take_turn(server_pk: int, user_pk: int, per_minute: int) -> None:
    """Count a run against the user's minute; refuse past ``per_minute``."""
    key, now = (server_pk, user_pk), time.monotonic()
    recent = [t for t in _state.runs.pop(key, []) if now - t < 60.0]
    if len(recent) >= per_minute:
        _state.runs[key] = recent
        wait = 60.0 - (now - recent[0])
        raise RateLimited(
            f"You may run code {per_minute} times a minute; try again in {wait:.0f} s.", wait
        )
    _state.runs[key] = [*recent, now]
    while len(_state.runs) > MAX_USERS:
        _state.runs.popitem(last=False)


def _saved(result: RunResult) -> list[ReplyPart]:
    """The run's images as reply parts (files under the plugin's folder, oldest pruned)."""
    folder = _state.images
    if folder is None or not result.images:
        return []
    parts: list[ReplyPart] = []
    for name, data in result.images:
        if not data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
            continue  # only real PNG and JPEG files go out
        suffix = ".png" if data.startswith(b"\x89PNG") else ".jpg"
        path = folder / f"{uuid.uuid4().hex}{suffix}"
        path.write_bytes(data)
        parts.append(Image(path, caption=name[:80]))
    for old in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime)[:-KEPT_IMAGES]:
        old.unlink(missing_ok=True)
    return parts


def shown(result: RunResult) -> str:
    """The output as a code block (fences in it defused) with notes on how it ended."""
    output = result.output.replace("```", "``\u200b`") or "(no output)"
    notes = list(describe(result))
    if result.images:
        notes.append(f"{len(result.images)} image{'s' if len(result.images) != 1 else ''}")
    tail = f"\n({'; '.join(notes)})" if notes else ""
    return f"```\n{output.rstrip()}\n```{tail}"


@plugin.command(
    "run",
    "Run Python in a sandbox (no network; numpy and matplotlib available)",
    Option(
        "code",
        description="Python code, or a ```python code block",
        max_length=8000,
        rest=True,
        verbatim=True,
    ),
    ordered=False,
)
async def run_command(ctx: CommandContext, code: str) -> list[ReplyPart]:
    """The output as a code block, then any images."""
    settings = _settings(ctx.config)
    result = await _run(code, ctx.server_pk, ctx.user_pk, settings)
    return [Text(shown(result)), *_saved(result)]


@plugin.tool(hint=r"\b(python|code|script|run|execute|comput|plot|chart|graph|simulat|numpy)")
async def run_python(code: str, ctx: ToolContext) -> ToolResult:
    """Run Python code in a sandbox and get what it prints. Use it to compute, not guess.
    No network. numpy and matplotlib are available; a matplotlib figure is shown to the
    user as an image.

    Args:
        code: A complete Python program that prints its results.
    """
    settings = _settings(ctx.config)
    result = await _run(code, ctx.server_pk, ctx.user_pk, settings)
    notes = "; ".join(describe(result))
    text = (result.output or "(no output)") + (f"\n[{notes}]" if notes else "")
    return ToolResult(text, parts=tuple(_saved(result)))
