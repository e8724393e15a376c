"""The ``atelier`` command line: chat in the console, upgrade the database, list plugins.

It parses arguments, loads settings, sets up logging (stderr only) and hands over to the
app and the console adapter. Configuration and model errors end with one
``atelier: error: ...`` line on stderr and exit code 2, never a traceback. Heavy imports
(the app, the LLM) happen inside the subcommands so that ``atelier version`` and
configuration errors stay fast.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.adapters import registry
from bot.cli_kb import add_commands as add_kb_commands
from bot.cli_workers import add_commands as add_worker_commands
from bot.config import Settings, load_settings
from core.errors import AtelierError, ConfigError, ModelError

if TYPE_CHECKING:
    from bot.app import App
    from core.adapter import Adapter

log = logging.getLogger("atelier")

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``atelier`` command; return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level or "WARNING")
    if args.command == "version":
        print(f"atelier {_version()}")
        return EXIT_OK
    try:
        settings = load_settings(args.config, data_dir=args.data_dir)
        if args.log_level:
            settings.log_level = args.log_level
        _setup_logging(settings.log_level)
        handler: Callable[[argparse.Namespace, Settings], int] = args.handler
        return handler(args, settings)
    except (ConfigError, ModelError) as exc:
        return _fail(exc, EXIT_CONFIG)
    except AtelierError as exc:
        return _fail(exc, EXIT_FAILURE)
    except KeyboardInterrupt:
        # Ctrl-C is how people leave the console; it is not an error.
        sys.stderr.write("\n")
        return EXIT_OK


# ---- subcommands -------------------------------------------------------------------


def _chat(args: argparse.Namespace, settings: Settings) -> int:
    """``atelier chat``: the console adapter on stdin/stdout."""
    from bot.adapters.console import run_console

    interactive = sys.stdin.isatty() and sys.stdout.isatty()

    async def session() -> int:
        app = await _start_app(settings, spinner=interactive)
        try:
            return await run_console(
                app,
                server=args.server or settings.console.server,
                user=args.user or settings.console.user,
                admin=args.admin,
                stdin=sys.stdin,
                stdout=sys.stdout,
                interactive=interactive,
            )
        finally:
            await app.aclose()

    return asyncio.run(session())


def _run(args: argparse.Namespace, settings: Settings) -> int:
    """``atelier run``: serve every configured platform until Ctrl-C or SIGTERM.

    An adapter runs when its token is set (``ATELIER_DISCORD__TOKEN`` ...); with none
    configured this is a configuration error (exit code 2) before anything is loaded.
    """
    entries = registry.configured(settings)
    if not entries:
        names = " or ".join(entry.token_env for entry in registry.ENTRIES)
        raise ConfigError(
            f"no platform to serve: set {names} to run an adapter "
            "(or use `atelier chat` for the console)"
        )

    async def serve() -> int:
        app = await _start_app(settings, spinner=False)
        adapters: list[Adapter] = []
        try:
            for entry in entries:
                adapter = entry.build(app, settings)
                await adapter.start()
                adapters.append(adapter)
            print(f"serving: {', '.join(entry.name for entry in entries)}", flush=True)
            serving = asyncio.ensure_future(_first_to_end(adapters))
            try:
                await _until_stopped(serving)
            finally:
                await asyncio.gather(*(a.stop() for a in adapters), return_exceptions=True)
                await asyncio.gather(serving, return_exceptions=True)
        finally:
            await app.aclose()
        return EXIT_OK

    return asyncio.run(serve())


async def _first_to_end(adapters: list[Adapter]) -> None:
    """Wait until any adapter's connection ends; raise its error if it failed."""
    waits = [asyncio.ensure_future(adapter.wait_closed()) for adapter in adapters]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def _until_stopped(serving: asyncio.Future[Any]) -> None:
    """Wait until ``serving`` ends (raising its error) or SIGINT/SIGTERM arrives."""
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        stopping.cancel()
    if serving.done():
        serving.result()  # a failed connection ends `run` with its error
    else:
        log.info("stopping on signal")


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """``atelier db upgrade``: apply all database migrations (the core's and plugins')."""
    from sqlalchemy.engine import make_url

    from bot.plugin_loading import migrate_all
    from storage.repository import Storage

    async def upgrade() -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        storage = await Storage.open(settings.database_url, migrate=False)
        try:
            await storage.upgrade()
            entry_points = not settings.plugins.disable_entry_points
            await migrate_all(storage, include_entry_points=entry_points)
        finally:
            await storage.close()

    asyncio.run(upgrade())
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    print(f"database is up to date: {shown}")
    return EXIT_OK


def _plugins_list(args: argparse.Namespace, settings: Settings) -> int:
    """``atelier plugins list``: every discovered plugin and whether it is on by default."""
    from bot.plugin_loading import discover_plugins

    plugins = discover_plugins(include_entry_points=not settings.plugins.disable_entry_points)
    if not plugins:
        print("no plugins found")
        return EXIT_OK
    width = max(len(name) for name in plugins)
    for name in sorted(plugins):
        plugin = plugins[name]
        if plugin.required:
            state = "required"
        elif settings.plugins.enabled.get(name, plugin.enabled_by_default):
            state = "enabled "
        else:
            state = "disabled"
        print(f"{name:<{width}}  {plugin.version:<8}  {state}  {plugin.description}")
    return EXIT_OK


# ---- helpers -----------------------------------------------------------------------


async def _start_app(settings: Settings, *, spinner: bool) -> App:
    """Start the app; on a terminal, show its start-up stages next to a spinner."""
    from bot.app import App

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    status_view: AbstractContextManager[object] = nullcontext()
    report: Callable[[str], None] = _log_status
    if spinner:
        from rich.console import Console

        status = Console(stderr=True).status("starting Atelier…")
        status_view = status

        def report(message: str) -> None:
            _log_status(message)
            status.update(message)

    with status_view:
        return await App.start(settings, status=report)


def _log_status(message: str) -> None:
    log.info("%s", message)


def _fail(exc: AtelierError, code: int) -> int:
    sys.stderr.write(f"atelier: error: {exc}\n")
    return code


def _setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level, format=_LOG_FORMAT, force=True)


def _version() -> str:
    try:
        return metadata.version("atelier")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atelier", description="Atelier, a plugin-based chat assistant bot."
    )
    parser.add_argument(
        "--config", type=Path, metavar="PATH", help="config file (default: ./config.toml)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="PATH",
        help="data directory (beats data_dir in the file and ATELIER_DATA_DIR)",
    )
    parser.add_argument("--log-level", choices=_LEVELS, type=str.upper, help="stderr log level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = commands.add_parser("chat", help="chat with the bot in this terminal")
    chat.add_argument("--server", metavar="NAME", help="server id (default: console.server)")
    chat.add_argument("--user", metavar="NAME", help="user id (default: console.user)")
    chat.add_argument("--admin", action="store_true", help="act as a server admin")
    chat.set_defaults(handler=_chat)

    run = commands.add_parser("run", help="serve every configured platform (Discord)")
    run.set_defaults(handler=_run)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="apply database migrations").set_defaults(
        handler=_db_upgrade
    )

    plugins = commands.add_parser("plugins", help="installed plugins")
    plugin_commands = plugins.add_subparsers(
        dest="plugins_command", required=True, metavar="ACTION"
    )
    plugin_commands.add_parser("list", help="list discovered plugins").set_defaults(
        handler=_plugins_list
    )

    add_worker_commands(commands)
    add_kb_commands(commands)
    commands.add_parser("version", help="print the version")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
