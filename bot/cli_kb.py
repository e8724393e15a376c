"""``atelier kb add`` and ``atelier kb rebuild``: the knowledge base from the command line.

Bulk loading and re-embedding run the ``knowledge`` plugin alone (its config, tables and
embedding worker), without the chat model or any platform. A server is named as the
platform sees it: ``console:NAME``, ``discord:GUILD_ID``, ``telegram:CHAT_ID`` (a bare
``NAME`` is a console server).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

from bot.config import Settings
from bot.plugins import PluginManager
from bot.scoped import ScopedSettings
from core.errors import ConfigError, InputRejected
from storage.repository import Storage

EXIT_OK = 0
EXIT_SOME_FAILED = 1


def add_commands(commands: Any) -> None:
    """Register ``kb add`` and ``kb rebuild`` on the ``atelier`` sub-command parser."""
    kb = commands.add_parser("kb", help="the knowledge base (bulk add, rebuild)")
    actions = kb.add_subparsers(dest="kb_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add files to a server's knowledge base")
    add.add_argument("--server", required=True, metavar="PLATFORM:ID", help="e.g. discord:123")
    add.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    add.set_defaults(handler=kb_add)
    rebuild = actions.add_parser(
        "rebuild", help="re-embed every document from its stored text (after a model change)"
    )
    rebuild.add_argument("--server", metavar="PLATFORM:ID", help="only this server")
    rebuild.set_defaults(handler=kb_rebuild)


def kb_add(args: argparse.Namespace, settings: Settings) -> int:
    """Add every file (folders: their files, recursively) with a progress bar."""
    platform, server_id = parse_server(args.server)
    files = sorted(_files(args.paths))
    if not files:
        raise ConfigError("atelier kb add: no files found in the given paths")
    return asyncio.run(_add(settings, platform, server_id, files, sys.stderr))


def kb_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Re-embed one server's documents, or every server's."""
    target = parse_server(args.server) if args.server else None
    return asyncio.run(_rebuild(settings, target, sys.stderr))


def parse_server(value: str) -> tuple[str, str]:
    """``platform:id`` (or a console server's bare name) → (platform, id)."""
    platform, sep, server_id = value.partition(":")
    if not sep:
        platform, server_id = "console", value
    if platform not in ("console", "discord", "telegram") or not server_id.strip():
        raise ConfigError(
            f"--server {value!r}: expected console:NAME, discord:GUILD_ID or telegram:CHAT_ID"
        )
    return platform, server_id.strip()


async def _add(
    settings: Settings, platform: str, server_id: str, files: list[Path], out: TextIO
) -> int:
    failed = 0
    async with _knowledge(settings) as base:
        from plugins.knowledge.render import added

        server_pk = await base.library_server(platform, server_id)
        bar = Progress(len(files), out)
        for path in files:
            try:
                data = await asyncio.to_thread(path.read_bytes)
                result = await base.kb.add(
                    server_pk, path.name, data, added_by=None, added_by_name="atelier kb add"
                )
                bar.note(added(result))
            except (InputRejected, OSError) as exc:
                failed += 1
                bar.note(f"{path}: {getattr(exc, 'user_message', None) or exc}")
            bar.step()
        bar.done()
    print(f"{len(files) - failed} of {len(files)} files added", file=out)
    return EXIT_SOME_FAILED if failed else EXIT_OK


async def _rebuild(settings: Settings, target: tuple[str, str] | None, out: TextIO) -> int:
    async with _knowledge(settings) as base:
        if target is not None:
            servers = [await base.library_server(*target)]
        else:
            servers = await base.kb.library.servers()
        total = sum([(await base.kb.library.totals(pk))[1] for pk in servers])
        bar = Progress(total, out)
        chunks = 0
        for server_pk in servers:
            chunks += await base.kb.rebuild(server_pk, progress=bar.step)
        bar.done()
    print(f"re-embedded {chunks} passages in {len(servers)} servers", file=out)
    return EXIT_OK


class _Opened:
    def __init__(self, storage: Storage, kb: Any) -> None:
        self.storage, self.kb = storage, kb

    async def library_server(self, platform: str, server_id: str) -> int:
        return await self.storage.server_key(platform, server_id)


@asynccontextmanager
async def _knowledge(settings: Settings) -> AsyncIterator[_Opened]:
    """Storage (migrated) and the knowledge plugin alone, loaded with its config."""
    from bot.plugin_loading import discover_sources

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    storage = await Storage.open(settings.database_url)
    manager = PluginManager(
        settings.plugins,
        storage,
        data_dir=settings.data_dir,
        scoped=ScopedSettings(storage.settings),
        backends={"database": storage.engine},
    )
    try:
        manager.sources = discover_sources(include_entry_points=False)
        await manager.load("knowledge")
        # Loading imports the plugin afresh: its running state is in that module.
        from plugins.knowledge import _state

        yield _Opened(storage, _state.base)
    finally:
        await manager.close()
        await storage.close()


class Progress:
    """A one-line progress bar on a terminal; plain lines elsewhere (CI, pipes)."""

    def __init__(self, total: int, out: TextIO, width: int = 30) -> None:
        self.total, self.out, self.width, self.count = max(total, 1), out, width, 0
        self.tty = out.isatty()

    def step(self, amount: int = 1) -> None:
        """``amount`` more items are done."""
        self.count += amount
        if self.tty:
            filled = self.width * min(self.count, self.total) // self.total
            bar = "#" * filled + "-" * (self.width - filled)
            self.out.write(f"\r[{bar}] {self.count}/{self.total}")
            self.out.flush()

    def note(self, line: str) -> None:
        """A line above the bar."""
        self.out.write(("\r\x1b[K" if self.tty else "") + line + "\n")

    def done(self) -> None:
        """End the bar's line."""
        if self.tty:
            self.out.write("\n")


def _files(paths: list[Path]) -> set[Path]:
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            found.add(path)
    return found
