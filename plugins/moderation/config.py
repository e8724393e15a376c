"""The ``moderation`` plugin's settings, ``[plugins.config.moderation]`` in ``config.toml``.

The judge's model, the classifier's batching and the log's retention are the operator's
alone; which layers run, what is checked, who is exempt and where alerts go are per server
(``/plugins config moderation KEY VALUE``). Per-category thresholds and actions, and the
block and allow lists, are the server's rows (``/mod policy``, ``/mod block``).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from core.config import Section, server


class ModerationSettings(Section):
    """Settings of the moderation plugin."""

    judge: str = Field(
        "",
        description='The LLM judge: "" (off), "main" (the chat model), or a GGUF file path',
    )
    judge_chat_format: str = Field("chatml", description="Chat format of a judge GGUF")
    judge_timeout_s: float = Field(20.0, gt=0, le=600)
    batch_window_ms: float = Field(0.0, ge=0, le=1000, description="Classifier micro-batch")
    max_batch: int = Field(128, ge=1, le=10_000)
    log_retention_days: int = Field(90, ge=1, le=3650)
    max_log_rows: int = Field(100_000, ge=100, le=100_000_000, description="Per server")
    use_lists: bool = server(True, description="Block and allow lists (and the built-in list)")
    builtin_list: bool = server(True, description="The built-in English profanity list")
    use_classifier: bool = server(True, description="The local profanity classifier")
    use_judge: bool = server(True, description="The LLM judge, where the operator set one")
    check_outbound: bool = server(True, description="Check the bot's replies before sending")
    check_uploads: bool = server(True, description="Check documents added to the bot")
    alert_channel: str = server("", max_length=64, description="Moderators' channel id")
    timeout_minutes: int = server(10, ge=1, le=40_320, description="For the timeout action")
    exempt_users: list[str] = server(
        [], description="Platform user ids never moderated (still logged)"
    )
    exempt_roles: list[str] = server([], description="Role ids never moderated (still logged)")

    @field_validator("judge")
    @classmethod
    def _judge(cls, value: str) -> str:
        value = value.strip()
        if value in ("", "main") or value.endswith(".gguf"):
            return value
        raise ValueError('judge must be "", "main" or the path of a .gguf file')

    @field_validator("exempt_users", "exempt_roles")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        if len(value) > 200:
            raise ValueError("at most 200 ids")
        for item in value:
            if not item or len(item) > 64 or not item.isprintable():
                raise ValueError(f"not an id: {item[:64]!r}")
        return value
