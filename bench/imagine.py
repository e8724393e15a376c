"""/imagine end to end vs a direct diffusers call, and batching vs one image at a time.

overhead: the same job (prompt, size, steps, cfg, seed, scheduler) (a) as a direct
  ``StableDiffusionPipeline`` call in this process, PNG-encoded, and (b) as a console
  ``/imagine`` through the router, the plugin's queue and storage, and the local worker
  process (which owns the model); alternating runs, medians. The model is a larger
  random-weights SD 1.x pipeline built offline, sized so one image takes seconds here.
batching: 8 concurrent same-size ``/imagine`` from 8 users (``--batch-size`` pixels,
  ``--batch-steps``), each round once with ``max_batch`` 1 and once with 8, on a fresh
  bot and worker each; ``--repeats`` rounds. ``batch_speedup`` is the median over the
  rounds of (batched images/s) / (one-at-a-time images/s), the rounds' own values are in
  ``batch_speedup_runs``; ``images_per_s_*`` are medians.

    .venv/bin/python bench/imagine.py [--runs 3] [--size 256] [--steps 20] [--repeats 3]
        [--batch-size 128] [--batch-steps 10]

Final line: RESULT {"ratio_overhead": ..., "batch_speedup": ..., "batch_speedup_runs": [...],
"images_per_s_seq": ..., "images_per_s_batched": ...}
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import App
from bot.config import Settings
from core.events import CommandEvent, Error, Image, Origin
from tests.fakes import ScriptedChatModel, script
from workers.tiny import build_tiny_sd

PROMPT = "a lighthouse on a cliff at dusk"


def _direct_pipeline(model: Path) -> Any:
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(torch.device("cpu"))
    return pipe


def _direct_run(pipe: Any, size: int, steps: int, seed: int) -> float:
    import torch

    start = time.perf_counter()
    with torch.inference_mode():  # what a careful direct caller does (the engine does too)
        image = _call(pipe, size, steps, seed)
    image.save(io.BytesIO(), format="PNG")
    return time.perf_counter() - start


def _call(pipe: Any, size: int, steps: int, seed: int) -> Any:
    import torch

    return pipe(
        PROMPT,
        negative_prompt="",
        width=size,
        height=size,
        num_inference_steps=steps,
        guidance_scale=7.0,
        generator=torch.Generator("cpu").manual_seed(seed),
    ).images[0]


async def _bot_run(app: App, user: str, size: int, steps: int, seed: int) -> float:
    origin = Origin("console", "bench", "console", user, user_name=user)
    text = f"{PROMPT} --width {size} --height {size} --steps {steps} --seed {seed}"
    start = time.perf_counter()
    images = 0
    async for part in app.router.handle(CommandEvent(origin, "imagine", text)):
        if isinstance(part, Image):
            images += 1
        elif isinstance(part, Error):
            raise RuntimeError(part.message)
    assert images == 1
    return time.perf_counter() - start


def _settings(data_dir: Path, model: Path, max_batch: int, window_ms: int) -> Settings:
    return Settings(
        data_dir=data_dir,
        limits={"user_burst": 1000, "server_burst": 1000},
        plugins={
            "disable_entry_points": True,
            "config": {
                "imagine": {
                    "model_path": str(model),
                    "preload": True,
                    "max_batch": max_batch,
                    "batch_window_ms": window_ms,
                    "max_pending_per_user": 10,
                }
            },
        },
    )


async def _start(settings: Settings) -> App:
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    return await App.start(settings, chat_model=model)


async def _overhead(tmp: Path, model: Path, runs: int, size: int, steps: int) -> dict[str, Any]:
    pipe = await asyncio.to_thread(_direct_pipeline, model)
    direct, bot = [], []
    async with await _start(_settings(tmp / "overhead", model, 1, 0)) as app:
        await _bot_run(app, "warm", size, steps, 1)
        await asyncio.to_thread(_direct_run, pipe, size, steps, 1)
        for run in range(runs):
            direct.append(await asyncio.to_thread(_direct_run, pipe, size, steps, run))
            bot.append(await _bot_run(app, f"u{run}", size, steps, run))
    del pipe
    return {
        "ratio_overhead": round(statistics.median(bot) / statistics.median(direct), 4),
        "direct_s": round(statistics.median(direct), 3),
        "bot_s": round(statistics.median(bot), 3),
    }


async def _throughput(data_dir: Path, model: Path, max_batch: int, size: int, steps: int) -> float:
    """Images per second for 8 concurrent same-size /imagine on a fresh bot and worker."""
    async with await _start(_settings(data_dir, model, max_batch, 200)) as app:
        await _bot_run(app, "warm", size, steps, 1)
        start = time.perf_counter()
        await asyncio.gather(*(_bot_run(app, f"user{i}", size, steps, i) for i in range(8)))
        return 8 / (time.perf_counter() - start)


async def _batching(tmp: Path, model: Path, repeats: int, size: int, steps: int) -> dict[str, Any]:
    seq, batched = [], []
    for round_ in range(repeats):  # alternating, so drift on a busy machine hits both
        seq.append(await _throughput(tmp / f"seq{round_}", model, 1, size, steps))
        batched.append(await _throughput(tmp / f"batched{round_}", model, 8, size, steps))
    speedups = [b / s for s, b in zip(seq, batched, strict=True)]
    return {
        "batch_speedup": round(statistics.median(speedups), 3),
        "batch_speedup_runs": [round(x, 3) for x in speedups],
        "images_per_s_seq": round(statistics.median(seq), 3),
        "images_per_s_batched": round(statistics.median(batched), 3),
    }


async def main(
    runs: int, size: int, steps: int, repeats: int, batch_size: int, batch_steps: int
) -> dict[str, Any]:
    """Build the bench model, measure overhead then batching, return the RESULT."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        model = await asyncio.to_thread(build_tiny_sd, tmp / "bench-sd", size="bench")
        result = await _overhead(tmp, model, runs, size, steps)
        result.update(await _batching(tmp, model, repeats, batch_size, batch_steps))
    result.update(
        {
            "runs": runs,
            "size": size,
            "steps": steps,
            "repeats": repeats,
            "batch_size_px": batch_size,
            "batch_steps": batch_steps,
        }
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="batching rounds")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batch-steps", type=int, default=10)
    args = parser.parse_args()
    outcome = asyncio.run(
        main(args.runs, args.size, args.steps, args.repeats, args.batch_size, args.batch_steps)
    )
    print("RESULT " + json.dumps(outcome))
