"""Router capacity: many conversations at once through the full core on SQLite.

A fake instant chat model (no LLM time) isolates what Atelier itself costs per turn:
identify, guards, plugin lookup (default plugins on), agent loop, history read and
group-committed writes. The bare model is measured in the same run, the same way.

- **saturation** (the headline ``saturation_msgs_per_s``): ``--conversations`` closed
  loops at once, each sending its next message as soon as the previous reply ends, for
  ``--turns`` messages: the most the core can do on this machine. The bare side
  (``raw_saturation_msgs_per_s``) runs the same number of closed loops of the model's
  LangChain ``astream`` of the same messages a turn sends, so both have the same
  concurrency (``in_flight`` requests). Raw and core alternate ``--repeats`` times;
  each key is the median, the per-repeat values are in ``*_runs``. ``ratio_ms_per_msg``
  = ``core_ms_per_msg`` / ``raw_ms_per_call``: what a message costs in bare model calls
  (1.0 would be a free core). With every conversation always in flight, latency is
  ~``in_flight`` / throughput by Little's law, so it is no latency figure.
- **open loop** (``msgs_per_s``, ``p50_ms``, ``p99_ms``), run once before: the
  conversations send messages at random (Poisson) times, together offering ``--rate``
  msg/s for ``--seconds``; latency is from a message's scheduled arrival to its final
  reply part.
Conversations keep their history across the phases (up to ``agent.history_messages``),
as a chatting user's does.

    .venv/bin/python bench/router.py [--conversations 1000] [--rate 1000] [--seconds 5]
        [--turns 3] [--repeats 3]

Final line: RESULT {"saturation_msgs_per_s": ..., "raw_saturation_msgs_per_s": ...,
"ratio_ms_per_msg": ..., ..., "msgs_per_s": ..., "p50_ms": ..., "p99_ms": ...}
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
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable

from agents.agent import Turn
from bot.app import App
from bot.config import Settings
from core.events import MessageEvent, Origin, Text


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


async def _raw_closed(
    model: InstantChatModel, messages: list[BaseMessage], turns: int, latencies: list[float]
) -> None:
    """The bare side of one conversation: ``turns`` model streams back to back."""
    for _ in range(turns):
        start = time.perf_counter()
        async for _chunk in model.astream(messages):
            pass
        latencies.append(time.perf_counter() - start)


async def _saturate(loops: list[Coroutine[Any, Any, None]], latencies: list[float]) -> float:
    """Run the closed loops at once; messages (or calls) per second."""
    start = time.perf_counter()
    await asyncio.gather(*loops)
    return len(latencies) / (time.perf_counter() - start)


async def _turn_messages(app: App, index: int) -> list[BaseMessage]:
    """What the agent sends the model for a first message of conversation ``index``."""
    origin = _origin(index)
    identity = await app.services.storage.identify(origin)
    return app.router.agent.context(Turn(origin, identity, "hello 0", [], None), [])[0]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _open_loop(app: App, conversations: int, rate: float, seconds: float) -> dict[str, Any]:
    opened: list[float] = []
    start = time.perf_counter()
    gap = conversations / rate
    until = start + seconds
    await asyncio.gather(*(_open(app, i, gap, until, opened) for i in range(conversations)))
    return {
        "msgs_per_s": round(len(opened) / (time.perf_counter() - start), 1),
        "p50_ms": round(statistics.median(opened) * 1000, 2),
        "p99_ms": round(_percentile(opened, 0.99) * 1000, 2),
        "offered_per_s": rate,
    }


async def _saturation(
    app: App, model: InstantChatModel, conversations: int, turns: int, repeats: int
) -> dict[str, Any]:
    messages = [await _turn_messages(app, i) for i in range(conversations)]
    raw: list[float] = []
    core: list[float] = []
    core_latencies: list[float] = []
    for _ in range(repeats):
        latencies: list[float] = []
        loops = [_raw_closed(model, messages[i], turns, latencies) for i in range(conversations)]
        raw.append(await _saturate(loops, latencies))
        latencies = []
        loops = [_closed(app, i, turns, latencies) for i in range(conversations)]
        core.append(await _saturate(loops, latencies))
        core_latencies.extend(latencies)
    saturation, raw_saturation = statistics.median(core), statistics.median(raw)
    return {
        "saturation_msgs_per_s": round(saturation, 1),
        "raw_saturation_msgs_per_s": round(raw_saturation, 1),
        "ratio_ms_per_msg": round(raw_saturation / saturation, 2),
        "core_ms_per_msg": round(1000 / saturation, 3),
        "raw_ms_per_call": round(1000 / raw_saturation, 4),
        "saturation_p50_ms": round(statistics.median(core_latencies) * 1000, 1),
        "in_flight": conversations,
        "saturation_runs": [round(r, 1) for r in core],
        "raw_saturation_runs": [round(r, 1) for r in raw],
    }


async def main(
    conversations: int, rate: float, seconds: float, turns: int, repeats: int
) -> dict[str, Any]:
    """Start the bot on the instant model, run both phases, return the RESULT."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            limits={"user_burst": 1000, "server_burst": 100_000, "server_per_second": 1e6},
            plugins={"disable_entry_points": True},
        )
        model = InstantChatModel()
        async with await App.start(settings, chat_model=model) as app:
            warm: list[float] = []
            await asyncio.gather(*(_closed(app, i, 1, warm) for i in range(conversations)))
            opened = await _open_loop(app, conversations, rate, seconds)
            saturated = await _saturation(app, model, conversations, turns, repeats)
    # The headline first: capacity, then the open-loop latencies.
    return {**saturated, **opened, "conversations": conversations, "turns": turns}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered msg/s in all")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--turns", type=int, default=3, help="closed-loop turns each")
    parser.add_argument("--repeats", type=int, default=3, help="saturation runs, each side")
    args = parser.parse_args()
    result = asyncio.run(
        main(args.conversations, args.rate, args.seconds, args.turns, args.repeats)
    )
    print("RESULT " + json.dumps(result))
