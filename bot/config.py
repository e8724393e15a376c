"""Settings: ``config.toml`` plus ``ATELIER_*`` environment overrides, validated up front.

The TOML file is the documented source of every key and default (see ``config.toml``);
environment variables override it (``ATELIER_LLM__N_CTX=2048``, nested with ``__``).
Unknown keys and bad values stop start-up with a ``ConfigError`` naming the key. Secrets
(tokens, API keys) are accepted only from the environment, never from the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.errors import ConfigError

_SECRET_KEYS = {("discord", "token"), ("telegram", "token"), ("llm", "api_key")}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMSettings(_Section):
    """Which LLM answers, and how."""

    backend: Literal["llamacpp", "openai"] = "llamacpp"
    model_path: str = ""
    chat_format: str = "chatml"
    n_ctx: int = Field(default=4096, ge=256, le=1_048_576)
    n_gpu_layers: int | None = None
    n_threads: int | None = Field(default=None, ge=1)
    n_batch: int = Field(default=512, ge=8)
    max_tokens: int = Field(default=256, ge=1, le=32_768)
    temperature: float = Field(default=0.3, ge=0.0, le=5.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    seed: int = -1
    tool_calling: Literal["auto", "native", "grammar"] = "auto"
    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "local"
    request_timeout_s: float = Field(default=300.0, gt=0)
    api_key: SecretStr | None = None


class StorageSettings(_Section):
    """Where state lives; an empty ``url`` means SQLite at ``<data_dir>/atelier.db``."""

    url: str = ""
    echo: bool = False


class AgentSettings(_Section):
    """How the agent uses the LLM."""

    system_prompt: str = (
        "You are Atelier, a helpful assistant in a chat server. Answer briefly. "
        "Use a tool when it helps."
    )
    max_steps: int = Field(default=4, ge=1, le=32)
    tool_hints: bool = True
    history_messages: int = Field(default=40, ge=0, le=1000)
    context_reserve_tokens: int = Field(default=256, ge=0)


class LimitsSettings(_Section):
    """Input limits and token-bucket rate limits (capacity, then refill per second)."""

    max_message_chars: int = Field(default=4000, ge=1)
    user_burst: int = Field(default=5, ge=1)
    user_per_second: float = Field(default=0.5, gt=0)
    server_burst: int = Field(default=30, ge=1)
    server_per_second: float = Field(default=5.0, gt=0)


class PluginsSettings(_Section):
    """Plugin defaults: which are on where no server override exists, limits, config."""

    enabled: dict[str, bool] = Field(default_factory=dict)
    call_timeout_s: float = Field(default=30.0, gt=0)
    timeouts: dict[str, float] = Field(default_factory=dict)
    config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    disable_entry_points: bool = False


class ImagineSettings(_Section):
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
    max_pending_per_user: int = Field(default=3, ge=1)
    images_per_day_per_user: int = Field(default=100, ge=0)  # 0: no limit (all servers, DMs)
    images_per_day_per_server: int = Field(default=500, ge=0)
    images_per_day_global: int = Field(default=0, ge=0)
    keep_days: float = Field(default=30.0, ge=0)  # 0: keep images forever
    max_store_mb: float = Field(default=2048.0, ge=0)  # 0: no cap on the images folder
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str = "redis://127.0.0.1:6379/1"
    visibility_timeout_s: int = Field(default=3600, ge=1)


class ConsoleSettings(_Section):
    """The local console adapter."""

    server: str = "console"
    user: str = "me"


class DiscordSettings(_Section):
    """Discord adapter; the token comes only from ``ATELIER_DISCORD__TOKEN``."""

    token: SecretStr | None = None
    api_base: str = "https://discord.com/api/v10"  # override for proxies and tests
    gateway_url: str = ""  # empty: the one Discord's REST API names
    chat_channels: list[str] = Field(default_factory=list)  # channel ids answered always
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: list[int] | None = None
    edit_interval_s: float = Field(default=1.0, ge=0.2)
    sync_debounce_s: float = Field(default=2.0, ge=0)


class TelegramSettings(_Section):
    """Telegram adapter; the token comes only from ``ATELIER_TELEGRAM__TOKEN``."""

    token: SecretStr | None = None


class Settings(BaseSettings):
    """All of Atelier's settings."""

    model_config = SettingsConfigDict(
        env_prefix="ATELIER_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path("data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    llm: LLMSettings = Field(default_factory=LLMSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    plugins: PluginsSettings = Field(default_factory=PluginsSettings)
    imagine: ImagineSettings = Field(default_factory=ImagineSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment must win over them.
        return (env_settings, init_settings)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL: the configured one, or SQLite inside the data directory."""
        if self.storage.url:
            return self.storage.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'atelier.db').resolve()}"


def load_settings(
    path: Path | None = None, *, data_dir: Path | None = None, **overrides: Any
) -> Settings:
    """Load ``path`` (default ``config.toml`` when present) with environment overrides.

    ``data_dir`` (from ``--data-dir``) beats both file and environment. Raises
    ``ConfigError`` naming the key on an unknown key, a bad value or a secret in the file.
    """
    file_values = _read_toml(path)
    _reject_secrets(file_values, path)
    file_values.update(overrides)
    try:
        settings = Settings(**file_values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
    if data_dir is not None:
        settings.data_dir = data_dir
    return settings


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        default = Path("config.toml")
        if not default.exists():
            return {}
        path = default
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _reject_secrets(values: dict[str, Any], path: Path | None) -> None:
    for section, key in _SECRET_KEYS:
        if isinstance(values.get(section), dict) and key in values[section]:
            env = f"ATELIER_{section.upper()}__{key.upper()}"
            raise ConfigError(
                f"{path}: {section}.{key} is a secret and may not be in the config file; "
                f"set the environment variable {env} instead"
            )


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f"{path}: " if path else ""
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(root)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{where}{key}: {msg}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
