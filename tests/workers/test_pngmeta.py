"""The ``parameters`` chunk reads exactly like AUTOMATIC1111's."""

from __future__ import annotations

import io

from PIL import Image

from workers.api import ImageRequest
from workers.pngmeta import a1111_parameters, add_parameters, read_parameters


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def test_txt2img_parameters_match_the_a1111_layout() -> None:
    request = ImageRequest("j", "a cat", negative="blurry", steps=20, cfg=7, seed=7)
    text = a1111_parameters(request, 7, "tiny")
    assert text == (
        "a cat\nNegative prompt: blurry\n"
        "Steps: 20, Sampler: Euler, CFG scale: 7.0, Seed: 7, Size: 512x512, Model: tiny"
    )


def test_img2img_adds_denoising_strength_and_no_empty_negative_line() -> None:
    request = ImageRequest(
        "j", "a cat", width=64, height=64, scheduler="euler_a", init_png=b"x", upscale=2.0
    )
    text = a1111_parameters(request, 3, "my, model")
    assert text.splitlines() == [
        "a cat",
        "Steps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 3, Size: 128x128, "
        'Model: "my, model", Denoising strength: 0.6, Hires upscale: 2.0',
    ]


def test_the_chunk_round_trips_and_pil_sees_it() -> None:
    png = add_parameters(_png(), "a cat\nSteps: 4")
    assert read_parameters(png) == "a cat\nSteps: 4"
    with Image.open(io.BytesIO(png)) as image:
        assert image.info["parameters"] == "a cat\nSteps: 4"


def test_non_latin1_prompts_survive_in_an_itxt_chunk() -> None:
    png = add_parameters(_png(), "猫 🐈")
    assert read_parameters(png) == "猫 🐈"
    with Image.open(io.BytesIO(png)) as image:
        assert image.info["parameters"] == "猫 🐈"


def test_a_png_without_parameters_reads_none() -> None:
    assert read_parameters(_png()) is None
