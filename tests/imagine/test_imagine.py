"""Stories of /imagine: options in, progress and images out, jobs in storage."""

from __future__ import annotations

import hashlib

import pytest

from bot.app import App
from core.events import Buttons, Error, Image, Progress, Text
from tests.imagine.conftest import job_id_of, run, stored
from tests.imagine.fake_backend import FakeImageBackend


async def test_imagine_streams_cancel_progress_images_summary_and_buttons(
    app: App, fake: FakeImageBackend
) -> None:
    fake.step_delay = 0.05
    parts = await run(app, "/imagine a red apple --width 64 --height 64 --steps 4 --seed 7")

    job_id = job_id_of(parts)
    assert parts[0] == Buttons(parts[0].buttons)  # the Cancel button comes first
    assert [b.custom_id for b in parts[0].buttons] == [f"imagine:cancel:{job_id}"]
    progress = [p for p in parts if isinstance(p, Progress)]
    assert progress and {p.label for p in progress} == {"image"}
    assert any(p.detail.startswith("step ") and "/4" in p.detail for p in progress)
    fractions = [p.fraction for p in progress if p.fraction is not None]
    assert fractions == sorted(fractions)
    images = [p for p in parts if isinstance(p, Image)]
    assert len(images) == 1 and images[0].caption == "seed 7"
    assert images[0].path.is_file()
    assert images[0].path.parent.parent == app.services.settings.data_dir / "images"
    assert images[0].path.name == f"{job_id}-0.png"
    summary = next(p for p in parts if isinstance(p, Text))
    assert '"a red apple"' in summary.text and "64×64" in summary.text
    assert "4 steps" in summary.text and "seed 7" in summary.text
    last = parts[-1]
    assert isinstance(last, Buttons)
    assert [b.custom_id for b in last.buttons] == [
        f"imagine:reroll:{job_id}",
        f"imagine:variations:{job_id}",
        f"imagine:upscale:{job_id}",
    ]

    job = await stored(app, job_id)
    assert job.status == "done" and job.seed == 7 and job.worker == "fake-worker"
    assert job.results == (str(images[0].path),)
    assert job.sha256 == (hashlib.sha256(images[0].path.read_bytes()).hexdigest(),)
    assert job.started_at is not None and job.finished_at is not None
    assert job.params["prompt"] == "a red apple" and job.params["steps"] == 4
    request = fake.submitted[0]
    assert (request.width, request.height, request.steps, request.seed) == (64, 64, 4, 7)


async def test_defaults_come_from_settings_and_the_seed_is_random(
    app: App, fake: FakeImageBackend
) -> None:
    await run(app, "/imagine a cat")
    await run(app, "/imagine a cat")
    first, second = fake.submitted
    assert (first.width, first.height, first.steps, first.cfg) == (64, 64, 4, 7.0)
    assert first.scheduler == "euler" and first.count == 1
    assert first.seed != second.seed
    assert 0 <= first.seed < 2**32


async def test_progress_is_throttled_to_a_few_parts_per_second(
    app: App, fake: FakeImageBackend
) -> None:
    fake.step_delay = 0.01
    parts = await run(app, "/imagine a cat --steps 50")
    progress = [p for p in parts if isinstance(p, Progress)]
    assert 1 <= len(progress) <= 8  # ~0.5 s of work: not 50 parts


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/imagine --width 64", "/imagine: missing prompt"),
        ('/imagine "   "', "option prompt: must not be empty"),
        ("/imagine " + "x" * 1001, "option prompt: 1001 characters; at most 1000"),
        (
            "/imagine cat --negative " + "x" * 1001,
            "option negative: 1001 characters; at most 1000",
        ),
        (
            "/imagine cat --width 100",
            "option width: 100 is not a multiple of 8 (allowed 8 to 512 in steps of 8)",
        ),
        ("/imagine cat --height 4", "option height: 4 is out of range (allowed 8 to 512)"),
        (
            "/imagine cat --width 512 --height 256",
            "options width and height: 512×256 is 131072 pixels; at most 65536 (e.g. 256×256)",
        ),
        ("/imagine cat --steps 99", "option steps: 99 is out of range (allowed 1 to 50)"),
        ("/imagine cat --count 5", "option count: 5 is out of range (allowed 1 to 4)"),
        ("/imagine cat --cfg 25", "option cfg: 25.0 is out of range (allowed 0 to 20)"),
        ("/imagine cat --seed abc", "option seed: must be a whole number, got 'abc'"),
        ("/imagine cat --seed 1.5", "option seed: must be a whole number, got '1.5'"),
        (
            "/imagine cat --scheduler magic",
            "option scheduler: 'magic' is not one of: euler, euler_a, ddim, dpmpp_2m, pndm, lms",
        ),
    ],
)
async def test_bad_input_is_refused_naming_the_option_and_range(
    app: App, fake: FakeImageBackend, line: str, message: str
) -> None:
    parts = await run(app, line)
    assert len(parts) == 1 and isinstance(parts[0], Error)
    assert parts[0].message.startswith(message)
    assert fake.submitted == []


async def test_a_failing_back_end_ends_with_its_message(app: App, fake: FakeImageBackend) -> None:
    fake.fail = "The GPU ran out of memory."
    parts = await run(app, "/imagine a cat")
    assert parts[-1] == Error("The GPU ran out of memory.")
    job = await stored(app, job_id_of(parts))
    assert (job.status, job.error) == ("failed", "The GPU ran out of memory.")
    assert job.results == ()


async def test_the_demo_model_is_labelled_as_noise(app: App, fake: FakeImageBackend) -> None:
    fake.description = "tiny random-weights demo model (it draws noise)"
    parts = await run(app, "/imagine a cat --seed 3")
    summary = next(p for p in parts if isinstance(p, Text))
    assert "demo model with random weights: it draws noise" in summary.text


async def test_several_images_have_consecutive_seeds(app: App, fake: FakeImageBackend) -> None:
    parts = await run(app, "/imagine a cat --seed 10 --count 3")
    images = [p for p in parts if isinstance(p, Image)]
    assert [i.caption for i in images] == ["seed 10", "seed 11", "seed 12"]
    assert len({i.path.read_bytes() for i in images}) == 3
    job = await stored(app, job_id_of(parts))
    assert len(job.sha256) == 3 and job.count == 3
