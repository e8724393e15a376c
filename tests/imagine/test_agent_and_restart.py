"""Stories of the agent's generate_image tool, per-server enablement and crash recovery."""

from __future__ import annotations

import json
import subprocess
import sys

from langchain_core.messages import ToolMessage

from bot.app import App
from bot.config import Settings
from core.events import Image, MessageEvent, Progress, Text
from tests.core.conftest import collect, origin, say
from tests.fakes import ScriptedChatModel, script, tool_call
from tests.imagine.conftest import pending_job, run, start, status_becomes, stored, until
from tests.imagine.fake_backend import FakeImageBackend


async def test_the_agent_draws_through_the_same_queue_and_shows_the_image(
    settings: Settings, fake: FakeImageBackend
) -> None:
    model = ScriptedChatModel(
        messages=script(tool_call("generate_image", prompt="a cat", seed=5), "Here you go.")
    )
    async with await App.start(settings, chat_model=model, image_backend=fake) as app:
        parts = await collect(app, MessageEvent(origin(), "draw me a cat"))
        schema = app.plugins.loaded["imagine"].tools[0].schema.model_json_schema()
    assert list(schema["properties"]) == ["prompt", "width", "height", "seed"]
    assert Progress("using generate_image") in parts
    images = [p for p in parts if isinstance(p, Image)]
    assert [i.caption for i in images] == ["seed 5"] and images[0].path.is_file()
    assert parts[-1] == Text("Here you go.")
    result = model.seen[1][-1]
    assert isinstance(result, ToolMessage) and result.content == "Generated 1 image, seed 5."
    assert (fake.submitted[0].width, fake.submitted[0].height) == (64, 64)


async def test_the_tool_reports_bad_sizes_to_the_model(
    settings: Settings, fake: FakeImageBackend
) -> None:
    model = ScriptedChatModel(
        messages=script(tool_call("generate_image", prompt="a cat", width=100), "Sorry.")
    )
    async with await App.start(settings, chat_model=model, image_backend=fake) as app:
        assert await say(app, "draw a wide cat") == "Sorry."
    assert model.seen[1][-1].content == (
        "error: the tool generate_image failed: option width: 100 is not a multiple of 8 "
        "(allowed 8 to 512 in steps of 8)"
    )
    assert fake.submitted == []


async def test_disabled_imagine_refuses_and_the_agent_has_no_generate_image(
    app: App, model: ScriptedChatModel
) -> None:
    assert "disabled" in await say(app, "/plugins disable imagine", admin=True)
    refused = await say(app, "/imagine a cat")
    assert refused.startswith(
        "error: /imagine belongs to the imagine plugin, which is disabled in this server."
    )
    await say(app, "draw a cat")
    await say(app, "draw a cat", server="s2")
    assert "generate_image" not in model.offered[-2]
    assert "generate_image" in model.offered[-1]


async def test_jobs_left_pending_by_a_crash_run_after_a_restart(
    settings: Settings, fake: FakeImageBackend
) -> None:
    fake.hold = True
    async with await App.start(
        settings, chat_model=ScriptedChatModel(messages=script("ok")), image_backend=fake
    ) as app:
        running = start(app, "/imagine first", channel="c1")
        second = start(app, "/imagine second", channel="c2")
        await until(lambda: len(fake.submitted) == 2)
        third = start(app, "/imagine third", channel="c3")
        ids = [await pending_job(app, p) for p in ("first", "second", "third")]
        await status_becomes(app, ids[0], "running")
    # the bot went away: the replies end with a note, and nothing is lost in storage
    assert (await running)[-1].message.startswith("The image service stopped")  # type: ignore[union-attr]
    await second
    await third
    assert fake.closed

    after = FakeImageBackend()
    async with await App.start(
        settings, chat_model=ScriptedChatModel(messages=script("ok")), image_backend=after
    ) as app:
        for job_id in ids:
            await status_becomes(app, job_id, "done")
        jobs = [await stored(app, job_id) for job_id in ids]
        assert sorted(r.job_id for r in after.submitted) == sorted(ids)
        assert all(job.results and job.sha256 for job in jobs)
        assert (await run(app, "/imagine fourth"))[-1].__class__.__name__ == "Buttons"


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(messages=script("ok", repeat=True))


def test_the_plugin_imports_no_torch_or_diffusers() -> None:
    code = (
        "import json, sys\n"
        "import plugins.imagine, plugins.imagine.jobs\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    leaks = [m for m in json.loads(out.stdout) if m.split(".")[0] in ("torch", "diffusers")]
    assert leaks == []
