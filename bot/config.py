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

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from agents.config import AgentSettings, LLMSettings
from core.config import Section
from core.errors import ConfigError

_SECRET_KEYS = {
    ("discord", "token"),
    ("telegram", "token"),
    ("telegram", "webhook_secret"),
    ("llm", "api_key"),
}


class StorageSettings(Section):
    """Where state lives; an empty ``url`` means SQLite at ``<data_dir>/atelier.db``."""

    url: str = ""
    echo: bool = False


class LimitsSettings(Section):
    """Input limits and token-bucket rate limits (capacity, then refill per second)."""

    max_message_chars: int = Field(default=4000, ge=1)
    max_attachment_mb: float = Field(default=25.0, gt=0)
    user_burst: int = Field(default=5, ge=1)
    user_per_second: float = Field(default=0.5, gt=0)
    server_burst: int = Field(default=30, ge=1)
    server_per_second: float = Field(default=5.0, gt=0)


class PluginsSettings(Section):
    """Plugin defaults: which are on where no server override exists, limits, config."""

    enabled: dict[str, bool] = Field(default_factory=dict)
    call_timeout_s: float = Field(default=30.0, gt=0)
    timeouts: dict[str, float] = Field(default_factory=dict)
    config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    disable_entry_points: bool = False


class ConsoleSettings(Section):
    """The local console adapter."""

    server: str = "console"
    user: str = "me"


class DiscordSettings(Section):
    """Discord adapter; the token comes only from ``ATELIER_DISCORD__TOKEN``."""

    token: SecretStr | None = None
    api_base: str = "https://discord.com/api/v10"  # override for proxies and tests
    gateway_url: str = ""  # empty: the one Discord's REST API names
    chat_channels: list[str] = Field(default_factory=list)  # channel ids answered always
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: list[int] | None = None
    edit_interval_s: float = Field(default=1.0, ge=0.2)
    sync_debounce_s: float = Field(default=2.0, ge=0)


class TelegramSettings(Section):
    """Telegram adapter; the token comes only from ``ATELIER_TELEGRAM__TOKEN`` and the
    webhook secret only from ``ATELIER_TELEGRAM__WEBHOOK_SECRET``."""

    token: SecretStr | None = None
    # A self-hosted Bot API server (lifts the 50 MB file limit; the tests' fake).
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    mode: Literal["polling", "webhook"] = "polling"
    poll_timeout_s: int = Field(default=30, ge=0, le=60)
    webhook_url: str = ""  # the public https URL Telegram posts updates to
    listen: str = "127.0.0.1"
    port: int = Field(default=8443, ge=1, le=65535)
    webhook_secret: SecretStr | None = None
    chat_chats: list[str] = Field(default_factory=list)  # chat ids answered always
    edit_interval_s: float = Field(default=1.0, ge=0.05)  # private chats
    group_edit_interval_s: float = Field(default=3.0, ge=0.05)  # groups: 20 writes a minute
    admin_cache_s: float = Field(default=60.0, ge=0)
    max_file_mb: float = Field(default=50.0, gt=0)  # 2000 with a self-hosted Bot API server


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
