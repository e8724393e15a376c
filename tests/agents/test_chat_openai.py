"""``ChatOpenAICompatible`` against a real ``python -m llama_cpp.server`` on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from agents.chat_openai import ChatOpenAICompatible
from core.errors import ModelError


@tool
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression and return the result.

    Args:
        expression: the arithmetic expression, e.g. "12 * 7".
    """
    return expression


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def server_url(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama.cpp OpenAI-compatible server with the bundled model (gemma template)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    args = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path)]
    args += ["--chat_format", "gemma", "--n_ctx", "1024", "--n_threads", "2"]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_up(base_url, proc, log)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def client(server_url: str) -> ChatOpenAICompatible:
    return ChatOpenAICompatible(base_url=server_url, max_tokens=16, temperature=0.0, seed=0)


@pytest.mark.model
async def test_a_reply_streams_over_sse_in_several_chunks(client: ChatOpenAICompatible) -> None:
    question = [HumanMessage("Name three colours.")]

    chunks = [chunk async for chunk in client.astream(question)]
    whole = await client.ainvoke(question)

    assert len(chunks) > 1
    assert "".join(str(c.content) for c in chunks) == whole.content


@pytest.mark.model
async def test_grammar_tool_calls_work_through_the_server(client: ChatOpenAICompatible) -> None:
    forced = await client.bind_tools([calculate], tool_choice="calculate").ainvoke("12 * 7?")
    free = await client.bind_tools([calculate]).ainvoke("Use the calculator: 12 * 7?")

    assert isinstance(forced, AIMessage)
    assert forced.tool_calls[0]["name"] == "calculate"
    assert isinstance(forced.tool_calls[0]["args"]["expression"], str)
    assert isinstance(free, AIMessage)
    for call in free.tool_calls:
        assert call["name"] == "calculate" and set(call["args"]) == {"expression"}
    assert free.invalid_tool_calls == []


async def test_a_closed_port_is_a_model_error_naming_the_server() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    client = ChatOpenAICompatible(base_url=url, timeout_s=5)

    with pytest.raises(ModelError, match="cannot reach LLM server"):
        await client.ainvoke("hello")
    with pytest.raises(ModelError, match="cannot reach LLM server"):
        [chunk async for chunk in client.astream("hello")]


@pytest.mark.model
async def test_an_http_error_is_a_model_error_with_the_status(server_url: str) -> None:
    client = ChatOpenAICompatible(base_url=server_url + "/nowhere")

    with pytest.raises(ModelError, match="HTTP 404"):
        await client.ainvoke("hello")
