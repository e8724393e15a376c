"""The diffusion engine: one loaded Stable Diffusion (1.x/2.x or XL) model that makes PNGs.

It runs inside the process that owns the device (the local child, a Celery worker) and is
the only place, with ``workers.tiny``, where diffusers is driven. It must never be
imported by the bot process, and never fetch weights or configs from a hub: every load is
local-only. A batch of compatible requests becomes ONE pipeline call with one seeded
generator per image, so an image does not depend on what it was batched with.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before torch/diffusers: huggingface_hub reads the offline switch once, at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from PIL import Image

from core.errors import AtelierError, ModelError
from workers.api import GeneratedImage, ImageRequest
from workers.pngmeta import a1111_parameters, add_parameters, output_size
from workers.tiny import DEMO_DESCRIPTION, DEMO_MARKER
from workers.validate import RequestRejected

SCHEDULERS = {
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "ddim": "DDIMScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
}
_XL_KEY_PREFIX = "conditioner.embedders.1"
_OOM_MESSAGE = "out of GPU memory; try a smaller size or count"


class GenerationCancelled(AtelierError):
    """Every job of the running batch was cancelled; the batch stopped between steps."""


class DeviceOutOfMemory(AtelierError):
    """The device ran out of memory for this batch (the cache was emptied)."""


@dataclass(frozen=True, slots=True)
class _Placement:
    device: torch.device
    dtype: torch.dtype


class DiffusionEngine:
    """A loaded model with its text-to-image and image-to-image pipelines (shared weights)."""

    def __init__(self, txt2img: Any, img2img: Any, *, arch: str, name: str, demo: bool) -> None:
        self._txt2img = txt2img
        self._img2img = img2img
        self.arch = arch
        self.model_name = name
        self._demo = demo

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        torch_compile: bool = False,
        channels_last: bool = False,
    ) -> DiffusionEngine:
        """Load a diffusers folder or a single .safetensors/.ckpt file; ModelError if unusable."""
        path = Path(path)
        if not path.exists():
            raise ModelError(f"diffusion model not found: {path}")
        placement = _placement(device, dtype)
        arch = detect_arch(path)
        try:
            pipe = _load_pipeline(path, arch, placement.dtype)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"cannot load diffusion model {path}: {exc}") from exc
        pipe = pipe.to(placement.device)
        _tune(pipe, torch_compile=torch_compile, channels_last=channels_last)
        img2img = _img2img_class(arch)(**pipe.components)
        for p in (pipe, img2img):
            p.set_progress_bar_config(disable=True)
        demo = path.is_dir() and (path / DEMO_MARKER).is_file()
        name = "atelier-tiny-demo" if demo else path.stem if path.is_file() else path.name
        return cls(pipe, img2img, arch=arch, name=name, demo=demo)

    @property
    def description(self) -> str:
        """What users are told they are talking to."""
        if self._demo:
            return DEMO_DESCRIPTION
        return f"{self.model_name} ({self.arch})"

    @property
    def device(self) -> str:
        """The device the weights live on, e.g. ``cpu`` or ``cuda:0``."""
        return str(self._txt2img.device)

    def generate(
        self,
        requests: Sequence[ImageRequest],
        *,
        on_step: Callable[[int, int], None],
        should_stop: Callable[[], bool],
    ) -> list[list[GeneratedImage]]:
        """Run compatible ``requests`` as one batch; images per request, in seed order.

        ``on_step(done, total)`` is called after every denoising step; when
        ``should_stop()`` turns true the batch stops there and GenerationCancelled is
        raised. DeviceOutOfMemory when the device is full; RequestRejected for an empty
        batch or one whose requests differ in ``batch_key``. The engine trusts the values:
        hosts check each request with ``workers.validate.validate_request`` first.
        """
        _check_batch(requests)
        try:
            images = self._run(requests, on_step, should_stop)
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            raise DeviceOutOfMemory(_OOM_MESSAGE) from exc
        return self._package(requests, images)

    def _run(
        self,
        requests: Sequence[ImageRequest],
        on_step: Callable[[int, int], None],
        should_stop: Callable[[], bool],
    ) -> list[Image.Image]:
        first = requests[0]
        img2img = first.init_png is not None
        pipe = self._img2img if img2img else self._txt2img
        pipe.scheduler = make_scheduler(first.scheduler, pipe.scheduler.config)
        width, height = output_size(first)
        kwargs: dict[str, Any] = {
            "prompt": [r.prompt for r in requests for _ in range(r.count)],
            "negative_prompt": [r.negative for r in requests for _ in range(r.count)],
            "num_inference_steps": first.steps,
            "guidance_scale": first.cfg,
            "generator": [self._generator(r.seed + i) for r in requests for i in range(r.count)],
            "callback_on_step_end": _step_callback(on_step, should_stop, first.steps),
            "output_type": "pil",
        }
        if img2img:
            kwargs["image"] = [
                _init_image(r, width, height) for r in requests for _ in range(r.count)
            ]
            kwargs["strength"] = first.strength
        else:
            kwargs["width"], kwargs["height"] = width, height
        with torch.inference_mode(), _numpy_bridge_quiet():
            return list(pipe(**kwargs).images)

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self._txt2img.device).manual_seed(seed)

    def _package(
        self, requests: Sequence[ImageRequest], images: list[Image.Image]
    ) -> list[list[GeneratedImage]]:
        out: list[list[GeneratedImage]] = []
        pending = iter(images)
        for request in requests:
            done = []
            for i in range(request.count):
                image, seed = next(pending), request.seed + i
                text = a1111_parameters(request, seed, self.model_name)
                png = add_parameters(_encode_png(image), text)
                done.append(
                    GeneratedImage(png=png, seed=seed, width=image.width, height=image.height)
                )
            out.append(done)
        return out


def _check_batch(requests: Sequence[ImageRequest]) -> None:
    """A real error, not an ``assert``: ``python -O`` must not run a mixed batch."""
    if not requests:
        raise RequestRejected("an empty batch")
    key = requests[0].batch_key
    odd = [r.job_id for r in requests if r.batch_key != key]
    if odd:
        raise RequestRejected(
            f"jobs {', '.join(odd[:5])} differ from {requests[0].job_id} in size, steps, "
            "scheduler, cfg or img2img settings and cannot share a batch"
        )


def make_scheduler(name: str, config: Any) -> Any:
    """A fresh diffusers scheduler by its Atelier name, configured like the model's own."""
    import diffusers

    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    try:
        with _numpy_bridge_quiet():
            return getattr(diffusers, SCHEDULERS[name]).from_config(config)
    except ImportError as exc:  # diffusers' LMS needs scipy, an optional dependency
        raise RuntimeError(f"scheduler {name!r} is not available here: {exc}") from exc


@contextlib.contextmanager
def _numpy_bridge_quiet() -> Iterator[None]:
    """Silence one known third-party DeprecationWarning, and only that one.

    diffusers' schedulers call ``np.array()`` on torch tensors; numpy 2 deprecates the
    torch side of that (its ``__array__`` lacks ``copy``). Harmless, and not ours to fix.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"__array__ implementation doesn't accept a copy keyword",
            category=DeprecationWarning,
        )
        yield


def detect_arch(path: Path) -> str:
    """``"sd"`` (1.x/2.x) or ``"sdxl"``, from model_index.json or the checkpoint's keys."""
    if path.is_dir():
        return _arch_of_folder(path)
    return "sdxl" if any(k.startswith(_XL_KEY_PREFIX) for k in _checkpoint_keys(path)) else "sd"


def _arch_of_folder(path: Path) -> str:
    try:
        index = json.loads((path / "model_index.json").read_text())
        class_name = str(index["_class_name"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"not a diffusers model folder (model_index.json): {path}") from exc
    return "sdxl" if "XL" in class_name else "sd"


def _checkpoint_keys(path: Path) -> list[str]:
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return list(f.keys())
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise ModelError(f"cannot read checkpoint {path}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"checkpoint holds no state dict: {path}")
    return [str(k) for k in state]


def _pipeline_class(arch: str) -> Any:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    return StableDiffusionXLPipeline if arch == "sdxl" else StableDiffusionPipeline


def _img2img_class(arch: str) -> Any:
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

    return StableDiffusionXLImg2ImgPipeline if arch == "sdxl" else StableDiffusionImg2ImgPipeline


def _load_pipeline(path: Path, arch: str, dtype: torch.dtype) -> Any:
    cls = _pipeline_class(arch)
    options: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
    if path.is_dir():
        options["low_cpu_mem_usage"] = False  # without accelerate installed, say so up front
        if arch == "sd":
            options.update(safety_checker=None, requires_safety_checker=False)
        return cls.from_pretrained(path, **options)
    # from_single_file finds the architecture's config in the local Hugging Face cache only.
    return cls.from_single_file(str(path), **options)


def _placement(device: str, dtype: str) -> _Placement:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    where = torch.device(device)
    if dtype == "auto":
        chosen = torch.float16 if where.type == "cuda" else torch.float32
    else:
        chosen = getattr(torch, dtype)
    return _Placement(where, chosen)


def _tune(pipe: Any, *, torch_compile: bool, channels_last: bool) -> None:
    """Optional speed-ups; attention is already SDPA, the diffusers default on torch 2."""
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
    if torch_compile:
        pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead", fullgraph=True)


def _step_callback(
    on_step: Callable[[int, int], None], should_stop: Callable[[], bool], steps: int
) -> Callable[..., dict[str, Any]]:
    def callback(pipe: Any, index: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        total = int(getattr(pipe, "num_timesteps", 0) or steps)
        on_step(index + 1, total)
        if should_stop():
            # diffusers' cooperative interrupt, plus a raise so no VAE decode is spent on it
            pipe._interrupt = True
            raise GenerationCancelled("the batch was cancelled")
        return tensors

    return callback


def _init_image(request: ImageRequest, width: int, height: int) -> Image.Image:
    if request.init_png is None:
        raise RequestRejected(f"job {request.job_id}: img2img without an init image")
    with Image.open(io.BytesIO(request.init_png)) as image:
        rgb = image.convert("RGB")
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.LANCZOS)
    return rgb


def _encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
