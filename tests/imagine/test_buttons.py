"""Stories of the buttons under an image: cancel, reroll, variations, upscale.

Derived jobs obey the limits and quotas in force when the button is pressed; a job's
status only moves forward (a late result never undoes a cancellation); the owner (or an
admin) can still cancel a job after imagine is disabled in the server.
"""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image as PILImage

from bot.app import App
from core.events import ButtonEvent, CommandEvent, Error, Image, ReplyPart, Text
from plugins.imagine.jobs import JobStore
from tests.core.conftest import collect, origin
from tests.imagine.conftest import (
    imagine_config,
    job_id_of,
    pending_job,
    run,
    start,
    status_becomes,
    stored,
    until,
)
from tests.imagine.fake_backend import FakeImageBackend


async def press(app: App, action: str, job_id: str, **who: Any) -> list[ReplyPart]:
    """Press ``imagine:<action>:<job_id>``; the parts of the reply."""
    return await collect(app, ButtonEvent(origin(**who), f"imagine:{action}:{job_id}"))


async def test_cancel_a_queued_job(app: App, fake: FakeImageBackend) -> None:
    fake.hold = True
    busy = [start(app, "/imagine a", channel="c1"), start(app, "/imagine b", channel="c2")]
    await until(lambda: len(fake.submitted) == 2)
    waiting = start(app, "/imagine c", channel="c3")
    job_id = await pending_job(app, "c")
    # the requester presses Cancel (from another channel: see the report on router locks)
    assert await press(app, "cancel", job_id, channel="c4") == [Text("Cancelled.")]
    parts = await waiting
    assert parts[-1] == Text("Cancelled.")
    assert (await stored(app, job_id)).status == "cancelled"
    fake.release()
    for task in busy:
        await task
    assert "c" not in [r.prompt for r in fake.submitted]


async def test_cancel_a_running_job(app: App, fake: FakeImageBackend) -> None:
    fake.hold = True
    task = start(app, "/imagine a", channel="c1")
    await until(lambda: len(fake.submitted) == 1)
    job_id = fake.submitted[0].job_id
    await status_becomes(app, job_id, "running")
    assert await press(app, "cancel", job_id, user="u2") == [
        Error("Only the person who asked for this image (or a server admin) can cancel it.")
    ]
    assert await press(app, "cancel", job_id, channel="c2") == [Text("Cancelled.")]
    parts = await task
    assert parts[-1] == Text("Cancelled.")
    assert fake.cancelled == [job_id]
    assert (await stored(app, job_id)).status == "cancelled"
    assert await press(app, "cancel", job_id) == [
        Text("That image job is already over (cancelled).")
    ]


async def test_reroll_keeps_the_settings_with_a_new_seed(app: App, fake: FakeImageBackend) -> None:
    first = await run(app, "/imagine a red apple --seed 7 --steps 3")
    parts = await press(app, "reroll", job_id_of(first))
    again = fake.submitted[-1]
    assert again.prompt == "a red apple" and again.steps == 3 and again.seed != 7
    job = await stored(app, job_id_of(parts))
    assert job.params["parent"] == job_id_of(first) and job.params["kind"] == "reroll"
    assert any(isinstance(p, Image) for p in parts)


async def test_variations_start_from_the_first_image(app: App, fake: FakeImageBackend) -> None:
    first = await run(app, "/imagine a red apple --seed 7 --width 64 --height 48")
    image = next(p for p in first if isinstance(p, Image))
    parts = await press(app, "variations", job_id_of(first))
    request = fake.submitted[-1]
    assert request.init_png == image.path.read_bytes()
    assert (request.width, request.height, request.strength) == (64, 48, 0.6)
    assert request.seed != 7 and request.upscale == 1.0
    job = await stored(app, job_id_of(parts))
    assert job.params["parent"] == job_id_of(first) and job.params["kind"] == "variation"
    assert "variation of" in next(p.text for p in parts if isinstance(p, Text))


async def test_upscale_doubles_the_size_within_the_limits(app: App, fake: FakeImageBackend) -> None:
    first = await run(app, "/imagine a red apple --width 64 --height 48")
    parts = await press(app, "upscale", job_id_of(first))
    request = fake.submitted[-1]
    assert (request.width, request.height, request.upscale) == (64, 48, 2.0)  # the worker ×2
    assert request.init_png is not None and request.count == 1
    images = [p for p in parts if isinstance(p, Image)]
    with PILImage.open(images[0].path) as upscaled:
        assert upscaled.size == (128, 96)
    job = await stored(app, job_id_of(parts))
    assert job.params["parent"] == job_id_of(first) and job.params["kind"] == "upscale"

    big = await run(app, "/imagine a pear --width 256 --height 256")
    refused = await press(app, "upscale", job_id_of(big))
    assert refused == [
        Error(
            "Cannot upscale: 2× would be 512×512, over the limits (512×512 at most, 65536 pixels)."
        )
    ]


@pytest.mark.parametrize("action", ["reroll", "variations", "upscale", "cancel"])
async def test_a_button_of_an_unknown_deleted_or_foreign_job_says_it_is_gone(
    app: App, fake: FakeImageBackend, action: str
) -> None:
    gone = [Error("That image job no longer exists.")]
    assert await press(app, action, "0" * 32) == gone
    assert await press(app, action, "") == gone
    first = await run(app, "/imagine a cat")
    job_id = job_id_of(first)
    assert await press(app, action, job_id, server="elsewhere") == gone
    assert await JobStore(app.services.storage.engine).delete(job_id)
    assert await press(app, action, job_id) == gone


async def test_variations_of_a_failed_job_are_refused(app: App, fake: FakeImageBackend) -> None:
    fake.fail = "boom"
    first = await run(app, "/imagine a cat")
    fake.fail = None
    assert await press(app, "variations", job_id_of(first)) == [
        Error("That image job has no finished image yet.")
    ]


async def test_buttons_follow_the_limits_of_today_not_of_when_they_were_sent(
    app: App, fake: FakeImageBackend
) -> None:
    first = await run(app, "/imagine a red apple --steps 40 --width 128 --height 128")
    job_id = job_id_of(first)
    limits = imagine_config(app)
    limits.max_steps, limits.max_width = 30, 96  # an admin lowered them meanwhile
    assert await press(app, "reroll", job_id) == [
        Error(
            "Cannot reroll: the limits changed since this image was made; "
            "option width: 128 is out of range (allowed 8 to 96)"
        )
    ]
    limits.max_width = 512
    assert await press(app, "variations", job_id) == [
        Error(
            "Cannot make variations: the limits changed since this image was made; "
            "option steps: 40 is out of range (allowed 1 to 30)"
        )
    ]
    limits.max_pixels = 128 * 128  # 2× of 128×128 no longer fits
    refused = await press(app, "upscale", job_id)
    assert refused == [
        Error(
            "Cannot upscale: 2× would be 256×256, over the limits (512×512 at most, 16384 pixels)."
        )
    ]
    assert len(fake.submitted) == 1


async def test_buttons_count_against_the_daily_quotas(app: App, fake: FakeImageBackend) -> None:
    imagine_config(app).images_per_day_per_user = 2
    first = await run(app, "/imagine a cat")
    await press(app, "reroll", job_id_of(first))
    for action in ("reroll", "variations", "upscale"):
        parts = await press(app, action, job_id_of(first))
        assert len(parts) == 1 and isinstance(parts[0], Error)
        assert parts[0].message.startswith("Your daily quota is 2 images and 2 are used today.")
    assert len(fake.submitted) == 2


async def test_a_late_result_never_overwrites_a_cancellation(
    app: App, fake: FakeImageBackend
) -> None:
    fake.hold = True
    task = start(app, "/imagine a cat")
    await until(lambda: len(fake.submitted) == 1)
    job_id = fake.submitted[0].job_id
    await status_becomes(app, job_id, "running")
    # another bot process cancels it (its Cancel button reaches storage, not this worker)
    assert await JobStore(app.services.storage.engine).mark_ended(job_id, "cancelled", "Cancelled.")
    fake.release()  # ... and the worker finishes it anyway
    parts = await task
    assert parts[-1] == Text("Cancelled.")
    assert not any(isinstance(p, Image) for p in parts)
    job = await stored(app, job_id)
    assert (job.status, job.results) == ("cancelled", ())
    images = app.services.settings.data_dir / "images"
    assert list(images.glob(f"*/{job_id}-*")) == []  # the late file is not kept


async def test_a_job_cancelled_elsewhere_is_cancelled_in_the_back_end_when_it_starts(
    app: App, fake: FakeImageBackend
) -> None:
    fake.hold = True
    busy = [start(app, "/imagine a", channel="c1"), start(app, "/imagine b", channel="c2")]
    await until(lambda: len(fake.submitted) == 2)
    waiting = start(app, "/imagine c", channel="c3")
    job_id = await pending_job(app, "c")
    assert await JobStore(app.services.storage.engine).mark_ended(job_id, "cancelled", "Cancelled.")
    fake.release()
    assert (await waiting)[-1] == Text("Cancelled.")
    assert job_id in fake.cancelled
    assert (await stored(app, job_id)).status == "cancelled"
    for task in busy:
        await task


async def test_the_owner_can_cancel_a_running_job_after_imagine_is_disabled(
    app: App, fake: FakeImageBackend
) -> None:
    fake.hold = True
    task = start(app, "/imagine a cat", channel="c1")
    await until(lambda: len(fake.submitted) == 1)
    job_id = fake.submitted[0].job_id
    await status_becomes(app, job_id, "running")
    disabled = await collect(
        app, CommandEvent(origin(admin=True, channel="mods"), "plugins", "disable imagine")
    )
    assert "disabled" in str(disabled)
    # new work is refused, but the Cancel button still works for its owner (not others)
    assert await press(app, "reroll", job_id, channel="c2") == [
        Error("This button no longer works here.")
    ]
    assert await press(app, "cancel", job_id, user="u2", channel="c2") == [
        Error("Only the person who asked for this image (or a server admin) can cancel it.")
    ]
    assert await press(app, "cancel", job_id, channel="c2") == [Text("Cancelled.")]
    assert (await task)[-1] == Text("Cancelled.")
    assert (await stored(app, job_id)).status == "cancelled"
