"""The imagine service: admits jobs (limits, quotas), stores them, queues them, derives them.

Command handlers, button handlers and the agent tool all go through ``ImagineService``, so
a job is admitted the same way wherever it comes from: validated parameters, a per-user
pending limit (from config, overridable per server) and daily image quotas per user (over
all their servers and DMs), per server and for the whole bot. Storage checks the limits
and inserts the job in one serialised transaction (``JobStore.admit``), so concurrent
requests cannot overshoot them. Jobs derived from earlier ones (reroll, variations,
upscale) carry their parent's id and are validated against the limits as they are now,
not as they were when the button was sent. After a crash, ``recover`` re-enqueues what
storage says was pending.

It never renders reply parts and never talks to a back end directly (the dispatcher does).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from core.errors import CommandError, PermissionDenied, RateLimited, UserError
from plugins.imagine.dispatcher import Dispatcher, Entry, Follower
from plugins.imagine.files import ImageFiles
from plugins.imagine.jobs import ImageJob, JobStore, Limits, Refusal
from plugins.imagine.options import Params, check_size, random_seed, validate
from storage.models import utcnow
from workers.api import ImageRequest
from workers.config import ImagineSettings

log = logging.getLogger(__name__)

GONE = "That image job no longer exists."
NOT_KEPT = "That image is no longer stored (old images are deleted after a while)."
VARIATION_STRENGTH = 0.6
UPSCALE_FACTOR = 2
UPSCALE_STRENGTH = 0.4  # a "hires fix" keeps the composition and adds detail


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks for a job, and where (surrogate keys from the core)."""

    server_pk: int
    user_pk: int
    channel_pk: int
    is_admin: bool = False


class ImagineService:
    """Admission, storage and queueing of image jobs; see the module docstring."""

    def __init__(
        self,
        settings: ImagineSettings,
        store: JobStore,
        files: ImageFiles,
        dispatcher: Dispatcher,
    ) -> None:
        """Serve with these limits, this storage and this dispatcher."""
        self.settings = settings
        self.store = store
        self.files = files
        self.dispatcher = dispatcher

    @property
    def description(self) -> str:
        """What the back end says it is (shown to users)."""
        return self.dispatcher.backend.description

    # ---- new jobs ----------------------------------------------------------------

    async def submit(
        self, who: Requester, params: Params, *, max_pending: int | None = None
    ) -> tuple[ImageJob, Follower]:
        """Admit, store and queue a job; returns it and a follower of its events."""
        request = await self._request(uuid.uuid4().hex, params)
        job = ImageJob(
            id=request.job_id,
            status="queued",
            params=params.to_json(),
            seed=params.seed,
            count=params.count,
            server_pk=who.server_pk,
            user_pk=who.user_pk,
            channel_pk=who.channel_pk,
            created_at=utcnow(),
        )
        now = datetime.now(UTC)
        limits = self._limits(now, max_pending or self.settings.max_pending_per_user)
        refusal = await self.store.admit(job, limits)
        if refusal is not None:
            raise _refused(refusal, params.count, now)
        follower = self.dispatcher.follow(job.id)
        self.dispatcher.enqueue(Entry(job.id, who.server_pk, who.user_pk, request))
        return job, follower

    async def recover(self) -> int:
        """Re-enqueue jobs a crash left queued or running; returns how many."""
        recovered = 0
        for job in await self.store.unfinished():
            if job.status == "running" and not await self.store.requeue(job.id):
                continue  # it ended meanwhile (another process finished or cancelled it)
            try:
                request = await self._request(job.id, Params.from_json(job.params))
            except UserError as exc:
                await self.store.mark_ended(job.id, "failed", exc.user_message)
                continue
            self.dispatcher.enqueue(Entry(job.id, job.server_pk, job.user_pk, request))
            recovered += 1
        if recovered:
            log.info("re-enqueued %d image jobs left over from before", recovered)
        return recovered

    def _limits(self, now: datetime, max_pending: int) -> Limits:
        s = self.settings
        return Limits(
            since=_midnight(now),
            max_pending=max_pending,
            user_per_day=s.images_per_day_per_user,
            server_per_day=s.images_per_day_per_server,
            global_per_day=s.images_per_day_global,
        )

    async def _request(self, job_id: str, p: Params) -> ImageRequest:
        """The back-end request of a job (reading its init image, if any)."""
        init_png = None
        if p.init_image is not None:
            init_png = await self.files.read(p.init_image)
            if init_png is None:
                raise CommandError("The image this job starts from no longer exists.")
        return ImageRequest(
            job_id=job_id,
            prompt=p.prompt,
            negative=p.negative,
            width=p.width,
            height=p.height,
            steps=p.steps,
            cfg=p.cfg,
            seed=p.seed,
            count=p.count,
            scheduler=p.scheduler,
            init_png=init_png,
            strength=p.strength,
            upscale=p.upscale,
        )

    # ---- existing jobs -----------------------------------------------------------

    async def job(self, server_pk: int, job_id: str) -> ImageJob:
        """The job, if it exists and belongs to this server; else a user error."""
        job = await self.store.get(job_id) if job_id else None
        if job is None or job.server_pk != server_pk:
            raise CommandError(GONE)
        return job

    def reroll(self, job: ImageJob) -> Params:
        """The same parameters with a new random seed (within today's limits)."""
        params = Params.from_json(job.params)
        derived = replace(params, seed=random_seed(), parent=job.id, kind="reroll")
        return self._within_limits("reroll", derived)

    def variations(self, job: ImageJob) -> Params:
        """img2img from the job's first image with a new seed (within today's limits)."""
        params = Params.from_json(job.params)
        derived = replace(
            params,
            seed=random_seed(),
            init_image=_first_image(job),
            strength=VARIATION_STRENGTH,
            upscale=1.0,
            parent=job.id,
            kind="variation",
        )
        return self._within_limits("make variations", derived)

    def upscale(self, job: ImageJob) -> Params:
        """2× img2img of the job's first image; the doubled size must fit the limits."""
        params = Params.from_json(job.params)
        width, height = params.width * UPSCALE_FACTOR, params.height * UPSCALE_FACTOR
        try:
            check_size(self.settings, width, height)
        except CommandError as exc:
            s = self.settings
            raise CommandError(
                f"Cannot upscale: {UPSCALE_FACTOR}× would be {width}×{height}, over the "
                f"limits ({s.max_width}×{s.max_height} at most, {s.max_pixels} pixels)."
            ) from exc
        # The worker draws at width × upscale: the request keeps the base size.
        derived = replace(
            params,
            seed=params.seed,
            count=1,
            init_image=_first_image(job),
            strength=UPSCALE_STRENGTH,
            upscale=float(UPSCALE_FACTOR),
            parent=job.id,
            kind="upscale",
        )
        return self._within_limits("upscale", derived)

    def _within_limits(self, action: str, params: Params) -> Params:
        """``params`` if they fit the limits configured now (an admin may have lowered
        them since the button was sent); else a user error naming the option."""
        try:
            validate(self.settings, params)
        except UserError as exc:
            raise CommandError(
                f"Cannot {action}: the limits changed since this image was made; {exc.user_message}"
            ) from exc
        return params

    async def cancel(self, job: ImageJob, who: Requester) -> str:
        """Cancel a queued or running job of this user (or any job, for an admin)."""
        if job.user_pk != who.user_pk and not who.is_admin:
            raise PermissionDenied(
                "Only the person who asked for this image (or a server admin) can cancel it."
            )
        if not job.pending:
            return f"That image job is already over ({job.status})."
        cancelled = await self.dispatcher.cancel(job.id)
        if not cancelled and not self.dispatcher.is_running(job.id):
            # Not this process's job (another bot process, or left over): storage decides,
            # and a job that ended meanwhile stays as it ended.
            if not await self.store.mark_ended(job.id, "cancelled", "Cancelled."):
                ended = await self.store.get(job.id)
                status = ended.status if ended is not None else "deleted"
                return f"That image job is already over ({status})."
        return "Cancelled."


def _first_image(job: ImageJob) -> str:
    if job.status != "done":
        raise CommandError("That image job has no finished image yet.")
    if not job.results:
        raise CommandError(NOT_KEPT)
    return job.results[0]


_WHOSE = {
    "user": "Your daily quota",
    "server": "This server's daily quota",
    "global": "The daily quota of this bot (for everyone)",
}


def _refused(refusal: Refusal, count: int, now: datetime) -> RateLimited:
    """The user's reply for a job that breaks a limit, naming the limit."""
    if refusal.limit == "pending":
        return RateLimited(
            f"You already have {refusal.used} image jobs queued (limit {refusal.allowed}). "
            "Wait until one finishes, or cancel one.",
            0.0,
        )
    left = (_midnight(now) + timedelta(days=1) - now).total_seconds()
    return RateLimited(
        f"{_WHOSE[refusal.limit]} is {refusal.allowed} images and {refusal.used} are used "
        f"today{f'; you asked for {count}' if count > 1 else ''}. The quota resets at "
        f"00:00 UTC (in {_duration(left)}).",
        left,
    )


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _duration(seconds: float) -> str:
    minutes = max(1, int(seconds // 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
