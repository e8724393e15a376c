"""The mcp plugin's parts without a server: the operator's config is validated, results
are cut and images checked whatever an MCP server sends, the core builds sourced tools
only with names and schemas an LLM API accepts."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import ToolMessage
from pydantic import ValidationError

from bot.tools import build_sourced
from core.errors import PluginError, ToolFailed
from core.events import Image
from core.plugin import SourcedTool, ToolContext
from plugins.mcp.config import McpSettings
from plugins.mcp.results import Limits, converted
from tests.mcp_plugin.server import DOT

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("servers", "wrong"),
    [
        ({"Bad_Name": {"transport": "stdio", "command": "x"}}, "server name 'Bad_Name'"),
        ({"a": {"transport": "stdio"}}, "a stdio server needs a command"),
        ({"a": {"transport": "http", "url": "ftp://x"}}, "needs an http(s) url"),
        ({"a": {"transport": "http", "url": "http://x", "command": "sh"}}, "are for stdio"),
        ({"a": {"transport": "stdio", "command": "x", "url": "http://x"}}, "are for http"),
        ({"a": {"transport": "stdio", "command": "x", "env": {"A=B": "1"}}}, "'A=B' is not"),
        (
            {"a": {"transport": "http", "url": "http://x", "headers_from_env": {"X": "$Y"}}},
            "'$Y' is not an environment variable name",
        ),
        ({"a": {"transport": "websocket", "url": "ws://x"}}, "transport"),
        ({"a": {"transport": "stdio", "command": "x", "shell": True}}, "shell"),
    ],
)
def test_bad_server_config_is_refused_with_the_reason(servers: object, wrong: str) -> None:
    with pytest.raises(ValidationError) as caught:
        McpSettings.model_validate({"servers": servers})
    assert wrong in str(caught.value), caught.value


def _message(content: object, status: str = "success") -> ToolMessage:
    return ToolMessage(content=content, tool_call_id="1", status=status)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), max_size=5), st.integers(min_value=200, max_value=2000))
def test_text_is_cut_to_the_limit_and_never_lost_silently(texts: list[str], limit: int) -> None:
    blocks = [{"type": "text", "text": t} for t in texts]
    result = converted(_message(blocks), "s/t", None, Limits(chars=limit))
    whole = "\n".join(t for t in texts if t)
    if len(whole) <= limit:
        assert result.text == (whole or "(the tool returned nothing)")
    else:
        assert result.text.startswith(whole[:limit])
        assert result.text.endswith(f"[cut: {len(whole) - limit} more characters not shown]")
    assert result.parts == ()


@settings(max_examples=100, deadline=None)
@given(st.text(), st.sampled_from(["image", "file", "audio", "", "weird"]), st.binary(max_size=64))
def test_hostile_blocks_never_fail_the_call(text: str, kind: str, data: bytes) -> None:
    blocks: list[object] = [
        text,
        {"type": kind, "base64": base64.b64encode(data).decode(), "text": text},
        {"type": "image", "data": text},
        {"type": "image", "url": "http://127.0.0.1/x.png"},
        42,
    ]
    result = converted(_message(blocks), "s/t", None, Limits())
    assert result.parts == ()  # no folder, no images; and nothing but PNG/JPEG/GIF/WebP anyway
    assert isinstance(result.text, str) and result.text


def test_images_are_checked_by_their_bytes_and_counted(tmp_path: Path) -> None:
    png = {"type": "image", "base64": base64.b64encode(DOT).decode()}
    fake = {"type": "image", "base64": base64.b64encode(b"<svg onload=x>").decode()}
    result = converted(_message([png, fake, png, png]), "s/t", tmp_path, Limits(images=2))
    assert [type(p) for p in result.parts] == [Image, Image]
    assert all(isinstance(p, Image) and p.path.read_bytes() == DOT for p in result.parts)
    assert "[an image not shown: not a PNG, JPEG, GIF or WebP image]" in result.text
    assert "[an image not shown: too many images]" in result.text
    big = converted(_message([png]), "s/t", tmp_path, Limits(image_bytes=10))
    assert big.parts == () and "too large" in big.text


def test_an_error_result_is_a_tool_error_with_the_servers_words() -> None:
    with pytest.raises(ToolFailed) as caught:
        converted(_message("x" * 2000, status="error"), "s/t", None, Limits())
    message = caught.value.user_message
    assert message.startswith("s/t reported an error: xxx") and len(message) < 700, message


async def _noop(arguments: dict[str, object], ctx: ToolContext) -> str:
    return "ok"


@pytest.mark.parametrize(
    ("name", "schema", "wrong"),
    [
        ("has space", {"type": "object"}, "is not [A-Za-z0-9_-]{1,64}"),
        ("x" * 65, {"type": "object"}, "is not [A-Za-z0-9_-]{1,64}"),
        ("", {"type": "object"}, "is not [A-Za-z0-9_-]{1,64}"),
        ("ok", {"type": "array"}, "must be a JSON object schema"),
    ],
)
def test_the_core_refuses_sourced_tools_no_llm_api_accepts(
    name: str, schema: dict[str, object], wrong: str
) -> None:
    with pytest.raises(PluginError, match=wrong.replace("[", r"\[").replace("{", r"\{")):
        build_sourced("p", SourcedTool(name, "d", schema, _noop), lambda: 1.0)


def test_a_sourced_tool_keeps_its_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}
    tool = build_sourced("p", SourcedTool("p_add", "Add.", schema, _noop), lambda: 1.0)
    assert tool.name == "p_add" and tool.args == schema["properties"]
