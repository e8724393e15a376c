"""Router throughput: many conversations at once through the full core on SQLite.

A fake instant chat model (no LLM time) isolates what Atelier itself costs per turn:
identify, guards, plugin lookup, agent loop, history read and group-committed writes.

Two measurements in one run:
- **open loop** (the RESULT's msgs_per_s / p50_ms / p99_ms): 1,000 conversations each
  sending messages at random (Poisson) times, together offering ``--rate`` msg/s for
  ``--seconds``; latency is from a message's scheduled arrival to its final reply part.
- **saturation**: every conversation sends its next message as soon as the previous reply
  ends (closed loop) — the most the core can do on this machine. With all 1,000 always in
  flight, latency is then ~1,000 / throughput by Little's law, so it is reported apart.

The raw baseline in the same run is the fake model streamed directly (no router, no
storage): ``core_ms_per_msg`` vs ``raw_ms_per_call`` says what the core adds.

    .venv/bin/python bench/router.py [--conversations 1000] [--rate 1000] [--seconds 5]

Final line: RESULT {"msgs_per_s": ..., "p50_ms": ..., "p99_ms": ..., ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable

from bot.app import App
from bot.config import Settings
from bot.events import MessageEvent, Origin, Text


class InstantChatModel(BaseChatModel):
    """Answers at once with a fixed three-word reply, streamed in three chunks."""

    @property
    def _llm_type(self) -> str:
        return "instant"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Runnable[Any, Any]:
        return self

    def _generate(self, messages: list[BaseMessage], *a: Any, **k: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("fine, thank you"))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for word in ("fine, ", "thank ", "you"):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))


def _origin(index: int) -> Origin:
    return Origin("bench", f"s{index % 50}", f"c{index}", f"u{index}", user_name=f"u{index}")


async def _turn(app: App, origin: Origin, text: str) -> None:
    final = None
    async for part in app.router.handle(MessageEvent(origin, text)):
        if isinstance(part, Text):
            final = part.text
    assert final == "fine, thank you", final


async def _closed(app: App, index: int, turns: int, latencies: list[float]) -> None:
    origin = _origin(index)
    for turn in range(turns):
        start = time.perf_counter()
        await _turn(app, origin, f"hello {turn}")
        latencies.append(time.perf_counter() - start)


async def _open(
    app: App, index: int, mean_gap: float, until: float, latencies: list[float]
) -> None:
    """Messages arrive at Poisson times; each waits for the conversation's previous one."""
    origin = _origin(index)
    rng = random.Random(index)
    arrival = time.perf_counter() + rng.expovariate(1 / mean_gap)
    pending: list[asyncio.Task[None]] = []
    turn = 0
    while arrival < until:
        await asyncio.sleep(max(0.0, arrival - time.perf_counter()))
        pending.append(asyncio.create_task(_timed(app, origin, f"hi {turn}", arrival, latencies)))
        turn += 1
        arrival += rng.expovariate(1 / mean_gap)
    await asyncio.gather(*pending)


async def _timed(
    app: App, origin: Origin, text: str, arrival: float, latencies: list[float]
) -> None:
    await _turn(app, origin, text)
    latencies.append(time.perf_counter() - arrival)


async def _raw(model: InstantChatModel, n: int) -> float:
    """Baseline: the same model streamed directly, n times; returns calls per second."""
    start = time.perf_counter()
    for _ in range(n):
        async for _chunk in model.astream("hello"):
            pass
    return n / (time.perf_counter() - start)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(conversations: int, rate: float, seconds: float, turns: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            limits={"user_burst": 1000, "server_burst": 100_000, "server_per_second": 1e6},
            plugins={"disable_entry_points": True},
        )
        model = InstantChatModel()
        raw_per_s = await _raw(model, 2000)
        async with await App.start(settings, chat_model=model) as app:
            warm: list[float] = []
            await asyncio.gather(*(_closed(app, i, 1, warm) for i in range(conversations)))
            opened: list[float] = []
            start = time.perf_counter()
            gap = conversations / rate
            until = start + seconds
            await asyncio.gather(*(_open(app, i, gap, until, opened) for i in range(conversations)))
            open_elapsed = time.perf_counter() - start
            closed: list[float] = []
            start = time.perf_counter()
            await asyncio.gather(*(_closed(app, i, turns, closed) for i in range(conversations)))
            closed_elapsed = time.perf_counter() - start
    saturation = len(closed) / closed_elapsed
    return {
        "msgs_per_s": round(len(opened) / open_elapsed, 1),
        "p50_ms": round(statistics.median(opened) * 1000, 2),
        "p99_ms": round(_percentile(opened, 0.99) * 1000, 2),
        "offered_per_s": rate,
        "conversations": conversations,
        "saturation_msgs_per_s": round(saturation, 1),
        "saturation_p50_ms": round(statistics.median(closed) * 1000, 1),
        "core_ms_per_msg": round(1000 / saturation, 3),
        "raw_ms_per_call": round(1000 / raw_per_s, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered msg/s in all")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--turns", type=int, default=3, help="closed-loop turns each")
    args = parser.parse_args()
    result = asyncio.run(main(args.conversations, args.rate, args.seconds, args.turns))
    print("RESULT " + json.dumps(result))
