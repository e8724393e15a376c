"""Built-in ``imagine`` plugin: /imagine, its buttons and the agent's generate_image tool.

Jobs are admitted (limits, quotas), stored in ``image_jobs``, queued fairly across servers
and users, and handed to the image back end by a dispatcher (a background task of this
plugin); replies stream progress, then the images, a summary and reroll / variations /
upscale buttons. Jobs left queued or running by a crash are re-enqueued at set-up. Old
images are deleted at set-up and hourly (``keep_days``, ``max_store_mb``).

Its config is ``workers.config.ImagineSettings`` (``[plugins.config.imagine]``); only
``max_pending_per_user`` may be changed by a server's admins. The back end is chosen by
``backend`` ("local": a worker child process; "celery": a GPU worker pool), imported
lazily in set-up, unless the app injected one (``uses=("image",)``: how tests bring a
fake). This package never imports torch or diffusers, and talks to back ends only
through ``workers.api``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import PluginError, UserError
from core.events import Image, ReplyPart
from core.plugin import CommandContext, Plugin, PluginContext, ToolContext, ToolResult
from plugins.imagine import render, retention, tables
from plugins.imagine.dispatcher import Completed, Dispatcher, Follower, Stopped
from plugins.imagine.files import ImageFiles
from plugins.imagine.jobs import ImageJob, JobStore
from plugins.imagine.options import Params, build_options, make_params
from plugins.imagine.service import ImagineService, Requester
from workers.api import ImageBackend
from workers.config import ImagineSettings

log = logging.getLogger(__name__)

plugin = Plugin(
    "imagine",
    "Image generation: /imagine and the generate_image tool",
    version="1.0.0",
    config_model=ImagineSettings,
    # A reply (or the tool) may wait for a whole job; set-up may load a large model.
    call_timeout_s=lambda config: config.job_timeout_s + 60,
    uses=("image", "database"),
    migrations="migrations",
    tables=tables.metadata,
)


@dataclass(slots=True)
class _State:
    """This load's running service (the module is re-imported on every load)."""

    service: ImagineService | None = None


_state = _State()


def _service() -> ImagineService:
    if _state.service is None:
        raise PluginError("imagine", "not set up")
    return _state.service


# ---- lifecycle ---------------------------------------------------------------------


@plugin.on_setup
async def _setup(ctx: PluginContext) -> None:
    """Build the options from config, start the back end, re-enqueue unfinished jobs."""
    settings = _settings(ctx.config)
    plugin.commands["imagine"].options = build_options(settings)
    injected = ctx.backend("image")  # a test's fake, when the app was given one
    backend = cast("ImageBackend", injected) if injected else make_backend(settings, ctx)
    try:
        await backend.start()
        store = JobStore(ctx.require("database", AsyncEngine))
        files = ImageFiles(ctx.data_dir)
        limit = settings.max_batch * 2  # the worker can batch what is in flight
        dispatcher = Dispatcher(backend, store, files, max_in_flight=limit)
        service = ImagineService(settings, store, files, dispatcher)
        await _sweep(service)
        await service.recover()
    except BaseException:
        await backend.close()
        raise
    _state.service = service


@plugin.task
async def _dispatch(ctx: PluginContext) -> None:
    """Hand queued jobs to the back end until the plugin stops."""
    await _service().dispatcher.run()


@plugin.task
async def _retain(ctx: PluginContext) -> None:
    """Delete old images every ``retention.SWEEP_EVERY_S`` until the plugin stops."""
    while True:
        await asyncio.sleep(retention.SWEEP_EVERY_S)
        await _sweep(_service())


async def _sweep(service: ImagineService) -> None:
    """One retention sweep; a failure is logged (the next sweep tries again)."""
    s = service.settings
    try:
        await retention.sweep(
            service.files, service.store, keep_days=s.keep_days, max_store_mb=s.max_store_mb
        )
    except Exception:
        log.exception("image retention sweep failed")


@plugin.on_teardown
async def _teardown(ctx: PluginContext) -> None:
    """Close the back end (the dispatcher task was already stopped)."""
    service, _state.service = _state.service, None
    if service is not None:
        await service.dispatcher.backend.close()


def _settings(config: object) -> ImagineSettings:
    if not isinstance(config, ImagineSettings):
        raise PluginError("imagine", "started without its config")
    return config


def make_backend(settings: ImagineSettings, ctx: PluginContext) -> ImageBackend:
    """The configured back end: a local worker process or the Celery pool."""
    if settings.backend == "celery":
        from workers.celery_backend import CeleryImageBackend

        return CeleryImageBackend(settings)
    from workers.local import LocalImageBackend

    model_path = settings.resolved_model_path(ctx.data_dir)
    return LocalImageBackend(settings, model_path, build_demo=not settings.model_path)


# ---- /imagine and buttons ----------------------------------------------------------


@plugin.command(
    "imagine",
    "Generate images from a text prompt",
    *build_options(ImagineSettings()),
    ordered=False,
)
async def imagine(
    ctx: CommandContext, prompt: str, **options: str | int | float | None
) -> AsyncIterator[ReplyPart]:
    """Queue a job from the options, then stream its progress and its images."""
    params = make_params(_service().settings, prompt, **options)
    async for part in _run(ctx, params):
        yield part


@plugin.button("reroll")
async def reroll(ctx: CommandContext, arg: str) -> AsyncIterator[ReplyPart]:
    """The same prompt and settings with a new random seed."""
    job = await _service().job(ctx.server_pk, arg)
    async for part in _run(ctx, _service().reroll(job)):
        yield part


@plugin.button("variations")
async def variations(ctx: CommandContext, arg: str) -> AsyncIterator[ReplyPart]:
    """Variations of the job's first image (img2img, new seed)."""
    job = await _service().job(ctx.server_pk, arg)
    async for part in _run(ctx, _service().variations(job)):
        yield part


@plugin.button("upscale")
async def upscale(ctx: CommandContext, arg: str) -> AsyncIterator[ReplyPart]:
    """The job's first image at twice the size (img2img on the same model)."""
    job = await _service().job(ctx.server_pk, arg)
    async for part in _run(ctx, _service().upscale(job)):
        yield part


@plugin.button("cancel", when_disabled=True)
async def cancel(ctx: CommandContext, arg: str) -> str:
    """Cancel a queued or running job: its owner or an admin, even where imagine was
    disabled after the job started (``ImagineService.cancel`` checks who asks)."""
    job = await _service().job(ctx.server_pk, arg)
    return await _service().cancel(job, _requester(ctx))


async def _run(ctx: CommandContext, params: Params) -> AsyncIterator[ReplyPart]:
    """Submit a job and stream its reply parts."""
    service = _service()
    job, follower = await service.submit(
        _requester(ctx), params, max_pending=_max_pending(ctx.config)
    )
    heartbeat = min(10.0, ctx.plugin.call_timeout_s / 3)
    try:
        yield render.cancel_buttons(job.id)
        async for part in _reply(job, params, follower, heartbeat):
            yield part
    finally:
        service.dispatcher.unfollow(job.id, follower)


async def _reply(
    job: ImageJob, params: Params, follower: Follower, heartbeat: float
) -> AsyncIterator[ReplyPart]:
    shown = None
    async for event in render.events(follower, heartbeat):
        if isinstance(event, Completed):
            for part in render.finished(job.id, params, event, _service().description):
                yield part
        elif isinstance(event, Stopped):
            yield render.stopped(event)
        else:
            shown = (render.progress(event) if event is not None else None) or shown
            if shown is not None:
                yield shown


def _requester(ctx: CommandContext | ToolContext) -> Requester:
    return Requester(ctx.server_pk, ctx.user_pk, ctx.channel_pk, ctx.origin.is_admin)


def _max_pending(config: object) -> int | None:
    return config.max_pending_per_user if isinstance(config, ImagineSettings) else None


# ---- the agent's tool --------------------------------------------------------------


# Offered only when a message speaks of pictures (see the calculator's hint for why).
PICTURE_HINT = (
    r"\b(draw\w*|image\w*|imagine|picture\w*|paint\w*|sketch\w*|illustrat\w*|photo\w*"
    r"|render\w*|portrait|wallpaper|logo|art\w*)\b"
)


@plugin.tool(hint=PICTURE_HINT)
async def generate_image(
    prompt: str,
    ctx: ToolContext,
    width: int | None = None,
    height: int | None = None,
    seed: int | None = None,
) -> ToolResult:
    """Generate an image from a text description and show it to the user.

    Args:
        prompt: What the image should show, in plain words.
        width: Width in pixels, a multiple of 8 (omit for the default).
        height: Height in pixels, a multiple of 8 (omit for the default).
        seed: A seed to repeat an earlier image (omit for a random one).
    """
    service = _service()
    params = make_params(service.settings, prompt, width=width, height=height, seed=seed)
    job, follower = await service.submit(
        _requester(ctx), params, max_pending=_max_pending(ctx.config)
    )
    try:
        while True:
            event = await follower.get()
            if isinstance(event, Completed):
                return _tool_result(event, service.description)
            if isinstance(event, Stopped):
                raise UserError(event.message)
    finally:
        service.dispatcher.unfollow(job.id, follower)


def _tool_result(done: Completed, description: str) -> ToolResult:
    count = len(done.paths)
    seeds = ", ".join(str(seed) for seed in done.seeds)
    plural = "s" if count != 1 else ""
    text = f"Generated {count} image{plural}, seed{plural} {seeds}."
    if render.is_demo(description):
        text += f" (Note: {render.DEMO_NOTE}.)"
    images = tuple(
        Image(path, caption=f"seed {seed}")
        for path, seed in zip(done.paths, done.seeds, strict=False)
    )
    return ToolResult(text, images)
