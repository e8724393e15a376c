"""What users may ask /imagine and generate_image for: options, defaults and limits.

The ranges come from ``settings.imagine`` (``config.toml``), so the command's options are
built at plugin set-up. The core checks types, choices, ranges and lengths of command
options; the rules it cannot express (multiples of 8, total pixels, prompt lengths for the
agent tool and for jobs derived from stored ones) are checked here with messages that name
the option and what is allowed.

Nothing here does I/O or knows about storage, queues or back ends.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, replace
from typing import Any

from core.errors import CommandError, InputRejected
from core.plugin import Option
from workers.config import ImagineSettings

MAX_SEED = 2**32 - 1
SIZE_STEP = 8
MIN_SIZE = 8


@dataclass(frozen=True, slots=True)
class Params:
    """One job's generation parameters (stored as the job's ``params``)."""

    prompt: str
    negative: str = ""
    width: int = 512
    height: int = 512
    steps: int = 20
    cfg: float = 7.0
    seed: int = 0
    count: int = 1
    scheduler: str = "euler"
    init_image: str | None = None  # path of the PNG an img2img job starts from
    strength: float = 0.6
    upscale: float = 1.0
    parent: str | None = None  # the job this one derives from (reroll, variation, upscale)
    kind: str = "new"  # new | reroll | variation | upscale

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Params:
        """Back from the stored form (unknown keys from newer versions are ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def with_seed(self, seed: int) -> Params:
        """The same parameters with another seed."""
        return replace(self, seed=seed)


def random_seed() -> int:
    """A fresh seed in 0 .. 2**32 - 1."""
    return secrets.randbelow(MAX_SEED + 1)


def build_options(s: ImagineSettings) -> tuple[Option, ...]:
    """The /imagine options with the configured defaults and ranges."""
    return (
        Option("prompt", description="What to draw", rest=True, max_length=s.max_prompt_chars),
        Option(
            "negative",
            description="What to avoid",
            required=False,
            max_length=s.max_prompt_chars,
            default="",
        ),
        Option(
            "width",
            "integer",
            f"Width in pixels, a multiple of 8 (default {s.default_width})",
            required=False,
            min_value=MIN_SIZE,
            max_value=s.max_width,
            default=s.default_width,
        ),
        Option(
            "height",
            "integer",
            f"Height in pixels, a multiple of 8 (default {s.default_height})",
            required=False,
            min_value=MIN_SIZE,
            max_value=s.max_height,
            default=s.default_height,
        ),
        Option(
            "steps",
            "integer",
            f"Denoising steps (default {s.default_steps})",
            required=False,
            min_value=1,
            max_value=s.max_steps,
            default=s.default_steps,
        ),
        Option(
            "cfg",
            "number",
            f"How closely to follow the prompt (default {s.default_cfg})",
            required=False,
            min_value=s.min_cfg,
            max_value=s.max_cfg,
            default=s.default_cfg,
        ),
        Option(
            "seed",
            "integer",
            "Seed for repeatable images (default: random)",
            required=False,
            min_value=0,
            max_value=MAX_SEED,
        ),
        Option(
            "count",
            "integer",
            "How many images (default 1)",
            required=False,
            min_value=1,
            max_value=s.max_count,
            default=1,
        ),
        Option(
            "scheduler",
            description=f"Sampler (default {_default_scheduler(s)})",
            required=False,
            choices=tuple(s.schedulers),
            default=_default_scheduler(s),
        ),
    )


def make_params(s: ImagineSettings, prompt: str, **given: Any) -> Params:
    """Parameters from the given values and the configured defaults, fully validated."""
    values = {k: v for k, v in given.items() if v is not None}
    params = Params(
        prompt=prompt.strip(),
        negative=str(values.get("negative", "")).strip(),
        width=int(values.get("width", s.default_width)),
        height=int(values.get("height", s.default_height)),
        steps=int(values.get("steps", s.default_steps)),
        cfg=float(values.get("cfg", s.default_cfg)),
        seed=int(values["seed"]) if "seed" in values else random_seed(),
        count=int(values.get("count", 1)),
        scheduler=str(values.get("scheduler", _default_scheduler(s))),
    )
    validate(s, params)
    return params


def validate(s: ImagineSettings, p: Params) -> None:
    """Raise a user error naming the option and the allowed range if ``p`` breaks a limit."""
    _check_prompt(s, p.prompt)
    _check_length(s, "negative", p.negative)
    _check_size(s, p.width, p.height)
    _check_range("steps", p.steps, 1, s.max_steps)
    _check_range("count", p.count, 1, s.max_count)
    _check_range("cfg", p.cfg, s.min_cfg, s.max_cfg)
    _check_range("seed", p.seed, 0, MAX_SEED)
    if p.scheduler not in s.schedulers:
        raise CommandError(
            f"option scheduler: {p.scheduler!r} is not one of: {', '.join(s.schedulers)}"
        )


def check_size(s: ImagineSettings, width: int, height: int) -> None:
    """Raise a user error if ``width`` × ``height`` is not an allowed image size."""
    _check_size(s, width, height)


def _check_prompt(s: ImagineSettings, prompt: str) -> None:
    if not prompt.strip():
        raise InputRejected("option prompt: must not be empty; say what to draw.")
    _check_length(s, "prompt", prompt)


def _check_length(s: ImagineSettings, name: str, value: str) -> None:
    if len(value) > s.max_prompt_chars:
        raise InputRejected(f"option {name}: {len(value)} characters; at most {s.max_prompt_chars}")


def _check_size(s: ImagineSettings, width: int, height: int) -> None:
    for name, value, high in (("width", width, s.max_width), ("height", height, s.max_height)):
        _check_range(name, value, MIN_SIZE, high)
        if value % SIZE_STEP:
            raise CommandError(
                f"option {name}: {value} is not a multiple of {SIZE_STEP} "
                f"(allowed {MIN_SIZE} to {high} in steps of {SIZE_STEP})"
            )
    if width * height > s.max_pixels:
        raise CommandError(
            f"options width and height: {width}×{height} is {width * height} pixels; "
            f"at most {s.max_pixels} (e.g. {_example(s)})"
        )


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise CommandError(
            f"option {name}: {_num(value)} is out of range (allowed {_num(low)} to {_num(high)})"
        )


def _example(s: ImagineSettings) -> str:
    """A square size that fits ``max_pixels`` (for the error message)."""
    side = int(s.max_pixels**0.5) // SIZE_STEP * SIZE_STEP
    side = min(side, s.max_width, s.max_height)
    return f"{side}×{side}"


def _default_scheduler(s: ImagineSettings) -> str:
    return s.schedulers[0] if s.schedulers else "euler"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
