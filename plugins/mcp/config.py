"""The ``mcp`` plugin's settings, ``[plugins.config.mcp]`` in ``config.toml``.

The operator lists the MCP servers that exist, by name; a server's admins can only turn
those on or off for their server (``/mcp``). Nothing here is a server setting: a chat can
never start a command or reach a URL the operator did not write down.

    [plugins.config.mcp.servers.files]
    transport = "stdio"
    command = "npx"
    args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv/shared"]
    env = { LOG_LEVEL = "warn" }            # given as written
    env_from = { API_KEY = "FILES_API_KEY" } # the bot's $FILES_API_KEY, as API_KEY

    [plugins.config.mcp.servers.weather]
    transport = "http"
    url = "https://mcp.example.com/mcp"
    headers_from_env = { Authorization = "WEATHER_MCP_AUTH" }
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config import Section

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,23}")
"""A server's name: it prefixes its tools' names (``weather_forecast``)."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")


class McpServer(Section):
    """One MCP server the bot may use: a command it starts (stdio) or a URL (http)."""

    transport: Literal["stdio", "http"]
    description: str = Field("", max_length=200)
    # stdio: the process. Its environment is only what is written here (plus PATH,
    # HOME and the like, which the SDK passes): never the bot's tokens.
    command: str = ""
    args: list[str] = Field(default_factory=list, max_length=64)
    env: dict[str, str] = Field(default_factory=dict)
    env_from: dict[str, str] = Field(default_factory=dict)  # its name -> the bot's variable
    cwd: str = ""
    # http: a streamable-HTTP endpoint; header values are read from the bot's environment.
    url: str = ""
    headers_from_env: dict[str, str] = Field(default_factory=dict)  # header -> variable
    timeout_s: float = Field(30.0, gt=0, le=600, description="Seconds one tool call may take")

    @field_validator("env", "env_from")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key, source in value.items():
            if not _ENV_NAME.fullmatch(key):
                raise ValueError(f"{key!r} is not an environment variable name")
            if source is not None and "\x00" in source:
                raise ValueError(f"the value of {key} has a NUL character")
        return value

    @field_validator("headers_from_env")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for header, variable in value.items():
            if not _HEADER.fullmatch(header):
                raise ValueError(f"{header!r} is not an HTTP header name")
            if not _ENV_NAME.fullmatch(variable):
                raise ValueError(f"{variable!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServer:
        if self.transport == "stdio":
            if not self.command.strip():
                raise ValueError("a stdio server needs a command")
            if self.url or self.headers_from_env:
                raise ValueError("url and headers_from_env are for http servers")
            bad = [name for name in self.env_from.values() if not _ENV_NAME.fullmatch(name)]
            if bad:
                raise ValueError(f"{bad[0]!r} is not an environment variable name")
        else:
            if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", self.url):
                raise ValueError(f"an http server needs an http(s) url, not {self.url!r}")
            if self.command or self.args or self.env or self.env_from or self.cwd:
                raise ValueError("command, args, env, env_from and cwd are for stdio servers")
        return self


class McpSettings(Section):
    """Settings of the mcp plugin (all the operator's)."""

    servers: dict[str, McpServer] = Field(default_factory=dict)
    result_chars: int = Field(
        4000, ge=200, le=100_000, description="A tool result is cut to this for the model"
    )
    max_images: int = Field(4, ge=0, le=16, description="Images from one result shown")
    image_mb: float = Field(5.0, gt=0, le=25, description="Largest image shown")
    connect_timeout_s: float = Field(15.0, gt=0, le=120)
    max_tools: int = Field(64, ge=1, le=512, description="Tools taken from one server")

    @field_validator("servers")
    @classmethod
    def _names(cls, value: dict[str, McpServer]) -> dict[str, McpServer]:
        for name in value:
            if not NAME.fullmatch(name):
                raise ValueError(
                    f"server name {name!r}: use 1-24 lowercase letters, digits and '-'"
                )
        return value
