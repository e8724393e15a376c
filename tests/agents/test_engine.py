"""The in-process engine with the real bundled model: streaming, cancelling, long input."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.engine import LlamaEngine
from agents.requests import ChatRequest
from tests.agents.conftest import N_CTX, load_engine

pytestmark = pytest.mark.model


def _ask(text: str, *, max_tokens: int = 12, key: str = "s1") -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "user", "content": text}],
        max_tokens=max_tokens,
        temperature=0.0,
        seed=0,
        fairness_key=key,
    )


def _text(chunk: dict[str, object]) -> str:
    choices = chunk["choices"]
    assert isinstance(choices, list)
    return str(choices[0]["delta"].get("content") or "")


def test_the_engine_knows_its_window_and_counts_tokens(engine: LlamaEngine) -> None:
    assert engine.n_ctx == N_CTX
    assert 0 < engine.count_tokens("hello world") < engine.count_tokens("hello world " * 10)


async def test_streamed_chunks_add_up_to_the_greedy_answer(engine: LlamaEngine) -> None:
    request = _ask("Write one sentence about the sea.")

    chunks = [_text(c) async for c in engine.stream_chat(request)]
    whole = await engine.complete_chat(request)

    assert len([c for c in chunks if c]) > 1
    assert "".join(chunks) == whole["choices"][0]["message"]["content"]


async def test_a_closed_stream_stops_generating_and_the_next_request_is_served(
    engine: LlamaEngine,
) -> None:
    long_request = _ask("Count from one to five hundred: 1, 2, 3, 4,", max_tokens=400)
    stream = engine.stream_chat(long_request)
    async for _ in stream:
        break
    started = time.monotonic()
    await stream.aclose()

    answer = await asyncio.wait_for(engine.complete_chat(_ask("Hi", max_tokens=4)), 60)

    assert answer["choices"][0]["message"]["content"] is not None
    assert engine.stats.cancelled >= 1
    assert time.monotonic() - started < 30


async def test_an_input_far_beyond_the_window_still_gets_an_answer(engine: LlamaEngine) -> None:
    huge = " ".join(f"word{i}" for i in range(20_000))
    history = [{"role": "user", "content": huge}, {"role": "assistant", "content": huge}]
    request = ChatRequest(
        messages=[{"role": "system", "content": "Be brief."}, *history, _ask(huge).messages[0]],
        max_tokens=8,
        temperature=0.0,
    )

    answer = await engine.complete_chat(request)

    assert isinstance(answer["choices"][0]["message"]["content"], str)


@pytest.fixture(scope="module")
def serial(model_path: Path) -> Iterator[LlamaEngine]:
    """An engine that answers one request at a time: waiting order is visible."""
    loaded = load_engine(model_path, parallel=1)
    yield loaded
    loaded.close()


async def test_a_busy_servers_backlog_does_not_starve_another_server(serial: LlamaEngine) -> None:
    engine = serial
    done: list[str] = []

    async def run(name: str, key: str) -> None:
        async for _ in engine.stream_chat(_ask(f"Say {name}.", max_tokens=3, key=key)):
            pass
        done.append(name)

    first = engine.stream_chat(_ask("Tell me a story.", max_tokens=24, key="busy"))
    await anext(first)  # the worker is now generating for "busy"
    waiting = [
        asyncio.create_task(run(name, key))
        for name, key in [("busy-2", "busy"), ("busy-3", "busy"), ("quiet-1", "quiet")]
    ]
    await asyncio.sleep(0.1)
    async for _ in first:
        pass
    await asyncio.gather(*waiting)

    # "busy" already has a request running: the quiet server's first goes before the
    # busy server's third (whether before its second depends on when each arrived).
    assert done.index("quiet-1") < done.index("busy-3")


@pytest.mark.model
def test_loading_keeps_llama_cpp_chatter_off_stderr(
    model_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="llama.cpp")
    loaded = LlamaEngine.load(
        model_path, n_ctx=256, n_gpu_layers=0, n_threads=1, n_batch=64, chat_format="gemma", seed=0
    )
    loaded.close()
    assert "llama_kv_cache" not in capfd.readouterr().err
    assert any("llama_kv_cache" in record.getMessage() for record in caplog.records)
