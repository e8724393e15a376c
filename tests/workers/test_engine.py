"""The engine on the tiny demo model: deterministic PNGs, batches, schedulers, img2img, errors."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from core.errors import ModelError
from workers.api import GeneratedImage, ImageRequest
from workers.pngmeta import read_parameters

SMALL = {"width": 64, "height": 64, "steps": 4}


def _generate(engine: Any, *requests: ImageRequest) -> list[list[GeneratedImage]]:
    result: list[list[GeneratedImage]] = engine.generate(
        requests, on_step=lambda done, total: None, should_stop=lambda: False
    )
    return result


def _pixels(image: GeneratedImage) -> np.ndarray:
    with Image.open(io.BytesIO(image.png)) as png:
        return np.asarray(png).astype(np.int16)


def test_the_tiny_model_is_labelled_as_a_noise_demo(engine: Any, tiny_model: Path) -> None:
    assert engine.description == "tiny random-weights demo model (it draws noise)"
    assert engine.device == "cpu"
    assert (tiny_model / "model_index.json").is_file()


def test_building_again_reuses_the_folder(tiny_model: Path) -> None:
    from workers.tiny import build_tiny_sd

    before = (tiny_model / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert build_tiny_sd(tiny_model) == tiny_model
    after = (tiny_model / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert before == after


def test_seed_7_gives_the_same_png_twice_with_its_parameters(engine: Any) -> None:
    request = ImageRequest("a", "a red cat", seed=7, **SMALL)  # type: ignore[arg-type]
    [[first]] = _generate(engine, request)
    [[second]] = _generate(engine, request)
    assert first.png == second.png
    assert (first.width, first.height, first.seed) == (64, 64, 7)
    parameters = read_parameters(first.png)
    assert parameters is not None
    assert parameters.startswith("a red cat\nSteps: 4, Sampler: Euler, CFG scale: 7.0, Seed: 7,")
    assert "Size: 64x64, Model: atelier-tiny-demo" in parameters


def test_count_makes_consecutive_seeds(engine: Any) -> None:
    request = ImageRequest("a", "a red cat", seed=7, count=3, **SMALL)  # type: ignore[arg-type]
    [images] = _generate(engine, request)
    assert [i.seed for i in images] == [7, 8, 9]
    assert len({i.png for i in images}) == 3


def test_an_image_from_a_batch_matches_the_same_job_run_alone(engine: Any) -> None:
    # CPU kernels pick their blocking by batch size, so the UNet's float sums differ in
    # the last bits (~1e-6); after 8-bit quantisation at most a few pixels move by one.
    cat = ImageRequest("a", "a red cat", seed=7, **SMALL)  # type: ignore[arg-type]
    dog = ImageRequest("b", "a dog", negative="ugly", seed=100, count=2, **SMALL)  # type: ignore[arg-type]
    [alone_cat] = _generate(engine, cat)
    [alone_dog] = _generate(engine, dog)
    batch_cat, batch_dog = _generate(engine, cat, dog)
    for alone, batched in zip([*alone_cat, *alone_dog], [*batch_cat, *batch_dog], strict=True):
        assert alone.seed == batched.seed
        difference = np.abs(_pixels(alone) - _pixels(batched))
        assert difference.max() <= 1
        assert (difference > 0).mean() < 0.01


def test_a_batch_needs_one_batch_key_a_real_error_not_an_assert(engine: Any) -> None:
    from workers.validate import RequestRejected

    with pytest.raises(RequestRejected, match="jobs b differ from a"):
        _generate(
            engine,
            ImageRequest("a", "x", **SMALL),  # type: ignore[arg-type]
            ImageRequest("b", "x", width=128, height=64, steps=4),
        )
    with pytest.raises(RequestRejected, match="an empty batch"):
        _generate(engine)


@pytest.mark.parametrize("name", ["euler", "euler_a", "ddim", "dpmpp_2m", "pndm", "lms"])
def test_every_scheduler_name_draws(engine: Any, name: str) -> None:
    if name == "lms" and importlib.util.find_spec("scipy") is None:
        pytest.skip("diffusers' LMS scheduler needs scipy, which is not installed")
    request = ImageRequest("a", "x", scheduler=name, **SMALL)  # type: ignore[arg-type]
    [[image]] = _generate(engine, request)
    assert image.png.startswith(b"\x89PNG")


def test_an_unknown_scheduler_names_the_allowed_ones(engine: Any) -> None:
    request = ImageRequest("a", "x", scheduler="karras9000", **SMALL)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="euler, euler_a, ddim, dpmpp_2m, pndm, lms"):
        _generate(engine, request)


def test_img2img_with_upscale_doubles_the_size(engine: Any) -> None:
    [[base]] = _generate(engine, ImageRequest("a", "x", seed=1, **SMALL))  # type: ignore[arg-type]
    request = ImageRequest(
        "b",
        "x",
        seed=1,
        init_png=base.png,
        strength=0.5,
        upscale=2.0,
        **SMALL,  # type: ignore[arg-type]
    )
    [[hires]] = _generate(engine, request)
    assert (hires.width, hires.height) == (128, 128)
    with Image.open(io.BytesIO(hires.png)) as png:
        assert png.size == (128, 128)
    assert "Denoising strength: 0.5" in (read_parameters(hires.png) or "")


def test_progress_is_reported_and_stopping_cancels(engine: Any) -> None:
    from workers.engine import GenerationCancelled

    steps: list[tuple[int, int]] = []
    request = ImageRequest("a", "x", width=64, height=64, steps=10)
    with pytest.raises(GenerationCancelled):
        engine.generate(
            [request],
            on_step=lambda d, t: steps.append((d, t)),
            should_stop=lambda: len(steps) >= 3,
        )
    assert steps == [(1, 10), (2, 10), (3, 10)]


def test_a_missing_model_is_a_model_error_naming_the_path(tmp_path: Path) -> None:
    from workers.engine import DiffusionEngine

    missing = tmp_path / "nowhere"
    with pytest.raises(ModelError, match="nowhere"):
        DiffusionEngine.load(missing)


@pytest.mark.parametrize("name", ["garbage.safetensors", "garbage.ckpt"])
def test_a_garbage_file_is_a_model_error_naming_the_path(tmp_path: Path, name: str) -> None:
    from workers.engine import DiffusionEngine

    path = tmp_path / name
    path.write_bytes(b"this is not a checkpoint" * 100)
    with pytest.raises(ModelError, match=name):
        DiffusionEngine.load(path)


def test_a_folder_without_model_index_is_a_model_error(tmp_path: Path) -> None:
    from workers.engine import DiffusionEngine

    with pytest.raises(ModelError, match=r"model_index\.json"):
        DiffusionEngine.load(tmp_path)


def test_sdxl_single_files_are_told_from_sd_by_their_keys(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from workers.engine import detect_arch

    xl, sd = tmp_path / "xl.safetensors", tmp_path / "sd.safetensors"
    save_file({"conditioner.embedders.1.model.ln_final.weight": torch.zeros(1)}, str(xl))
    save_file({"cond_stage_model.transformer.x": torch.zeros(1)}, str(sd))
    assert detect_arch(xl) == "sdxl"
    assert detect_arch(sd) == "sd"
