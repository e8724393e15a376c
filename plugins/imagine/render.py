"""Turn one job's events into the reply parts of /imagine and its buttons.

First a Cancel button, then progress (queue position, then "step k/n" with an ETA) at most
about four times a second, then the images, a summary and the reroll / variations /
upscale buttons; a failure ends with an ``Error`` carrying the back end's message. While
nothing happens a heartbeat repeats the last progress, so the core's per-part time limit
never cuts off a job that is merely waiting its turn.

It never changes jobs and never talks to storage or the back end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from core.events import Button, Buttons, Error, Image, Progress, ReplyPart, Text
from plugins.imagine.dispatcher import Completed, Follower, JobEvent, Stopped, Waiting
from plugins.imagine.options import Params
from workers.api import Queued, Started, Step

LABEL = "image"
MIN_INTERVAL_S = 0.25  # progress parts per job: at most ~4 per second
DEMO_NOTE = "demo model with random weights: it draws noise"


def cancel_buttons(job_id: str) -> Buttons:
    """The row sent first: a Cancel button."""
    return Buttons((Button("Cancel", f"imagine:cancel:{job_id}", "danger"),))


def result_buttons(job_id: str) -> Buttons:
    """The row sent with finished images."""
    return Buttons(
        (
            Button("Reroll", f"imagine:reroll:{job_id}", "primary"),
            Button("Variations", f"imagine:variations:{job_id}"),
            Button("Upscale 2×", f"imagine:upscale:{job_id}"),
        )
    )


async def events(follower: Follower, heartbeat_s: float) -> AsyncIterator[JobEvent | None]:
    """The job's events until it ends; None when ``heartbeat_s`` passed without one.

    Progress is throttled: after a progress event the next event is read no sooner than
    ``MIN_INTERVAL_S`` later; meanwhile the follower keeps only the newest progress.
    """
    last = float("-inf")
    while True:
        wait = last + MIN_INTERVAL_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        event = await follower.get(heartbeat_s)
        yield event
        if isinstance(event, Completed | Stopped):
            return
        if isinstance(event, Waiting | Queued | Step):
            last = time.monotonic()


def progress(event: JobEvent) -> Progress | None:
    """The progress part of an event (None for events that are not progress)."""
    if isinstance(event, Waiting):
        return Progress(LABEL, None, f"queued, position {event.position}")
    if isinstance(event, Queued):
        return Progress(LABEL, None, f"queued, position {event.position + 1}")
    if isinstance(event, Started):
        return Progress(LABEL, 0.0, f"started on {event.worker}")
    if isinstance(event, Step):
        total = max(event.total, 1)
        eta = f", about {_seconds(event.eta_s)} left" if event.eta_s is not None else ""
        return Progress(LABEL, min(event.step / total, 1.0), f"step {event.step}/{total}{eta}")
    return None


def finished(job_id: str, params: Params, done: Completed, description: str) -> list[ReplyPart]:
    """Images, the summary and the follow-up buttons of a finished job."""
    parts: list[ReplyPart] = [
        Image(path, caption=f"seed {seed}")
        for path, seed in zip(done.paths, done.seeds, strict=False)
    ]
    parts.append(Text(summary(params, done, description)))
    parts.append(result_buttons(job_id))
    return parts


def stopped(event: Stopped) -> ReplyPart:
    """The last part of a job that ended without images."""
    return Text("Cancelled.") if event.cancelled else Error(event.message)


def summary(params: Params, done: Completed, description: str) -> str:
    """One line about what was made; says so when the model is the random-weights demo."""
    seeds = ", ".join(str(seed) for seed in done.seeds) or str(params.seed)
    label = "seeds" if len(done.seeds) > 1 else "seed"
    kind = {
        "reroll": f" (reroll of {params.parent})",
        "variation": f" (variation of {params.parent})",
        "upscale": f" (upscaled 2× from {params.parent})",
    }.get(params.kind, "")
    lines = [
        f'"{params.prompt}"{kind} — {params.width}×{params.height}, {params.steps} steps, '
        f"cfg {params.cfg:g}, {params.scheduler}, {label} {seeds} "
        f"({done.worker}, {done.seconds:.1f} s)"
    ]
    if params.negative:
        lines.append(f"Negative: {params.negative}")
    if is_demo(description):
        lines.append(f"Note: {DEMO_NOTE}.")
    return "\n".join(lines)


def is_demo(description: str) -> bool:
    """Whether the back end describes itself as the random-weights demo model."""
    text = description.lower()
    return "random" in text and "weight" in text


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 90 else f"{value / 60:.0f} min"
