"""Checks at the trust boundary between the bot and the image workers, both directions.

``validate_request`` is what a worker asks of every request before it touches the
pipeline, against the worker's OWN ``[imagine]`` limits: a Celery worker cannot tell a
request the bot checked from one forged straight onto the broker, so it trusts neither.
``check_images`` is what a back end asks of every result before the bot saves or posts
it: real PNGs (decoded, not just sniffed) of exactly the size and count requested.

Torch-free (the bot process imports it); Pillow only reads headers and decodes PNGs
whose size was checked first, so a hostile PNG cannot blow up memory. Never raises
anything but ``RequestRejected`` / ``ResultRejected`` for bad input.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Iterator, Sequence

from PIL import Image

from core.errors import AtelierError, InputRejected
from workers.api import GeneratedImage, ImageRequest
from workers.config import ImagineSettings
from workers.pngmeta import output_size

MAX_SEED = 2**32 - 1  # the same range the imagine plugin hands out
MAX_JOB_ID_CHARS = 200
MIN_SIZE = 8
MAX_UPSCALE = 8.0
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_OVERHEAD = 1 << 20
"""Slack over raw RGBA for an init PNG's metadata chunks (A1111 parameters, ICC profile)."""


class RequestRejected(InputRejected):
    """A request breaks the worker's limits; the message names the field and the range."""


class ResultRejected(AtelierError):
    """A back end returned something that is not the requested PNGs."""


def validate_request(settings: ImagineSettings, request: ImageRequest) -> None:
    """Raise RequestRejected unless ``request`` is within ``settings``' limits.

    The same limits the imagine plugin enforces on users, plus what only a worker sees:
    types (a broker message is JSON from anyone), the output size after ``upscale``,
    ``strength``, and the init image of img2img.
    """
    _check_text("job_id", request.job_id, MAX_JOB_ID_CHARS)
    if not request.job_id:
        raise RequestRejected("job_id: must not be empty")
    _check_text("prompt", request.prompt, settings.max_prompt_chars)
    _check_text("negative", request.negative, settings.max_prompt_chars)
    _check_int("steps", request.steps, 1, settings.max_steps)
    _check_int("count", request.count, 1, settings.max_count)
    _check_int("seed", request.seed, 0, MAX_SEED)
    _check_number("cfg", request.cfg, settings.min_cfg, settings.max_cfg)
    if not isinstance(request.scheduler, str) or request.scheduler not in settings.schedulers:
        allowed = ", ".join(settings.schedulers)
        raise RequestRejected(f"scheduler: {_short(request.scheduler)} is not one of: {allowed}")
    _check_size(settings, request.width, request.height)
    _check_number("upscale", request.upscale, 1.0, MAX_UPSCALE)
    _check_number("strength", request.strength, 0.0, 1.0)
    if request.init_png is not None:
        if request.strength <= 0:
            raise RequestRejected("strength: must be above 0 for img2img")
        width, height = output_size(request)
        _check_size(settings, width, height, what="upscaled")
        _check_init_png(settings, request.init_png)


def check_images(request: ImageRequest, images: Sequence[GeneratedImage]) -> None:
    """Raise ResultRejected unless ``images`` are ``request.count`` real PNGs of its size.

    Each PNG is opened, verified (chunk CRCs) and fully decoded; its pixel size must be
    the request's output size (``width`` × ``height``, times ``upscale`` for img2img),
    and the seeds must be ``seed``, ``seed + 1``, ...
    """
    if len(images) != request.count:
        raise ResultRejected(f"{len(images)} images for a request of {request.count}")
    expected = output_size(request)
    for n, image in enumerate(images):
        if image.seed != request.seed + n:
            raise ResultRejected(f"image {n} has seed {image.seed}, not {request.seed + n}")
        if (image.width, image.height) != expected:
            size = f"{image.width}×{image.height}"
            raise ResultRejected(f"image {n} claims {size}, not {_size(expected)}")
        try:
            _check_png(image.png, expected)
        except ResultRejected as exc:
            raise ResultRejected(f"image {n}: {exc}") from None


def _check_png(data: object, expected: tuple[int, int]) -> None:
    if not isinstance(data, bytes) or not data.startswith(_PNG_SIGNATURE):
        raise ResultRejected("not a PNG")
    size = _png_size(data, ResultRejected)
    if size != expected:
        raise ResultRejected(f"the PNG is {_size(size)}, not {_size(expected)}")
    try:
        with _quiet_pillow(), Image.open(io.BytesIO(data)) as image:
            image.load()  # every IDAT decompressed and unfiltered: a truncated PNG fails
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, zlib.error…
        raise ResultRejected(f"the PNG does not decode ({exc})") from None


def _check_init_png(settings: ImagineSettings, data: object) -> None:
    if not isinstance(data, bytes):
        raise RequestRejected("init image: not bytes")
    limit = settings.max_pixels * 4 + _PNG_OVERHEAD
    if len(data) > limit:
        raise RequestRejected(f"init image: {len(data)} bytes; at most {limit}")
    if not data.startswith(_PNG_SIGNATURE):
        raise RequestRejected("init image: not a PNG")
    width, height = _png_size(data, RequestRejected)
    _check_size(settings, width, height, what="init image", step=1)


def _png_size(data: bytes, error: type[AtelierError]) -> tuple[int, int]:
    """The size in a PNG's header, with the whole chunk stream verified (no decoding)."""
    try:
        with _quiet_pillow():
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                size = image.size
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                image.verify()  # chunk structure and CRCs; pixels are not decoded
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError…
        raise error(f"not a valid PNG ({exc})") from None
    return int(size[0]), int(size[1])


@contextlib.contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Pillow warns (DecompressionBombWarning) before it refuses; our size checks decide."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _check_size(
    settings: ImagineSettings, width: object, height: object, *, what: str = "", step: int = 8
) -> None:
    prefix = f"{what} " if what else ""
    w = _check_int(f"{prefix}width", width, MIN_SIZE, settings.max_width)
    h = _check_int(f"{prefix}height", height, MIN_SIZE, settings.max_height)
    for axis, value in (("width", w), ("height", h)):
        if value % step:
            raise RequestRejected(f"{prefix}{axis}: {value} is not a multiple of {step}")
    if w * h > settings.max_pixels:
        raise RequestRejected(
            f"{prefix}size: {w}×{h} is {w * h} pixels; at most {settings.max_pixels}"
        )


def _check_text(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str):
        raise RequestRejected(f"{name}: not text")
    if len(value) > limit:
        raise RequestRejected(f"{name}: {len(value)} characters; at most {limit}")


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestRejected(f"{name}: {_short(value)} is not an integer")
    if not low <= value <= high:
        raise RequestRejected(f"{name}: {value} is out of range (allowed {low} to {high})")
    return value


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RequestRejected(f"{name}: {_short(value)} is not a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise RequestRejected(
            f"{name}: {value} is out of range (allowed {_num(low)} to {_num(high)})"
        )


def _short(value: object) -> str:
    """``repr`` cut short: a forged value may be megabytes long."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
