"""The ``[imagine]`` settings: the image back end, the model, and what users may ask for.

Declared beside the workers that enforce them; the ``imagine`` plugin and
``bot.config.Settings`` use this model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from core.config import Section, server
from core.errors import ModelError


class ImagineSettings(Section):
    """Image generation: the back end, the model, and what users may ask for."""

    backend: Literal["local", "celery"] = "local"
    model_path: str = ""  # empty: the bundled tiny random-weights demo (built on first use)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    torch_compile: bool = False
    channels_last: bool = False
    preload: bool = False  # start the local worker (and load the model) at bot start
    max_batch: int = Field(default=4, ge=1, le=64)
    batch_window_ms: int = Field(default=50, ge=0, le=10_000)
    job_timeout_s: float = Field(default=600.0, gt=0)
    default_width: int = Field(default=512, ge=8)
    default_height: int = Field(default=512, ge=8)
    default_steps: int = Field(default=20, ge=1)
    default_cfg: float = Field(default=7.0, ge=0)
    max_width: int = Field(default=1024, ge=8)
    max_height: int = Field(default=1024, ge=8)
    max_pixels: int = Field(default=1024 * 1024, ge=64)
    max_steps: int = Field(default=50, ge=1)
    max_count: int = Field(default=4, ge=1)
    min_cfg: float = Field(default=0.0, ge=0)
    max_cfg: float = Field(default=20.0, ge=0)
    max_prompt_chars: int = Field(default=1000, ge=1)
    schedulers: list[str] = Field(
        default_factory=lambda: ["euler", "euler_a", "ddim", "dpmpp_2m", "pndm", "lms"]
    )
    # Jobs one user may have queued; a server's admins may change it there.
    max_pending_per_user: int = server(3, ge=1, le=100)
    images_per_day_per_user: int = Field(default=100, ge=0)  # 0: no limit (all servers, DMs)
    images_per_day_per_server: int = Field(default=500, ge=0)
    images_per_day_global: int = Field(default=0, ge=0)
    keep_days: float = Field(default=30.0, ge=0)  # 0: keep images forever
    max_store_mb: float = Field(default=2048.0, ge=0)  # 0: no cap on the images folder
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str = "redis://127.0.0.1:6379/1"
    visibility_timeout_s: int = Field(default=3600, ge=1)

    def resolved_model_path(self, data_dir: Path) -> Path:
        """The configured model folder (``~`` expanded), or where the bundled demo lives.

        Raises ``ModelError`` naming the key when a configured model does not exist.
        """
        if not self.model_path:
            return data_dir / "models" / "tiny-sd"
        path = Path(self.model_path).expanduser()
        if not path.exists():
            raise ModelError(f"image model not found: {path} (plugins.config.imagine.model_path)")
        return path
