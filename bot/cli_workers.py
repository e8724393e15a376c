"""``atelier models ...`` and ``atelier worker --celery``: the CLI side of the image workers.

These commands run in processes that own a device (or build a model), so they may import
``workers`` modules that load torch — but only inside the handlers, never at import time,
so ``atelier chat`` and the bot process stay free of torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config import Settings
from core.errors import ConfigError
from workers.config import ImagineSettings

EXIT_OK = 0


def add_commands(commands: Any) -> None:
    """Register ``models`` and ``worker`` on the ``atelier`` sub-command parser."""
    models = commands.add_parser("models", help="build the bundled demo models")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    tiny = model_commands.add_parser(
        "tiny-sd", help="build the tiny random-weights Stable Diffusion demo (offline)"
    )
    tiny.add_argument("directory", type=Path, help="folder to write the pipeline to")
    tiny.add_argument("--size", choices=("tiny", "bench"), default="tiny")
    tiny.set_defaults(handler=models_tiny_sd)

    worker = commands.add_parser("worker", help="run an image worker of the Celery pool")
    worker.add_argument(
        "--celery", action="store_true", help="serve the Celery queue (the only kind)"
    )
    worker.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="processes, one per GPU"
    )
    worker.set_defaults(handler=celery_worker)


def models_tiny_sd(args: argparse.Namespace, settings: Settings) -> int:
    """Build the demo pipeline folder and print where it is."""
    from workers.tiny import build_tiny_sd

    print(build_tiny_sd(args.directory, size=args.size))
    return EXIT_OK


def celery_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run Celery worker process(es) on this machine's device(s) until stopped."""
    if not args.celery:
        raise ConfigError(
            "atelier worker: only --celery workers exist (the local worker is a child of "
            "the bot); run `atelier worker --celery`"
        )
    if args.concurrency < 1:
        raise ConfigError("atelier worker: --concurrency must be at least 1")
    from workers.celery_app import run_worker

    model_path = _model_path(settings)
    run_worker(
        imagine_settings(settings),
        model_path=model_path,
        concurrency=args.concurrency,
        loglevel=settings.log_level,
    )
    return EXIT_OK


def imagine_settings(settings: Settings) -> ImagineSettings:
    """The imagine plugin's config (``[plugins.config.imagine]``), validated."""
    try:
        return ImagineSettings.model_validate(settings.plugins.config.get("imagine", {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(part) for part in err["loc"])
        raise ConfigError(f"plugins.config.imagine.{key}: {err['msg']}") from exc


def _model_path(settings: Settings) -> Path:
    """The configured model, or the bundled demo (built here on first use)."""
    imagine = imagine_settings(settings)
    path = imagine.resolved_model_path(settings.data_dir)
    if imagine.model_path:
        return path
    from workers.tiny import build_tiny_sd

    return build_tiny_sd(path)


def __getattr__(name: str) -> Any:
    """``celery -A bot.cli_workers worker`` finds ``app`` here, built from the config.

    (``atelier worker --celery`` is the supported way; this serves Celery's own CLI.)
    """
    if name == "app":
        from bot.config import load_settings
        from workers.celery_app import make_celery

        return make_celery(imagine_settings(load_settings()))
    raise AttributeError(name)
