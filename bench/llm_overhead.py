"""What the bot adds around the LLM: raw llama-cpp-python vs the full console path.

Same prompt, greedy sampling, same ``max_tokens``, alternating runs in one process on one
loaded model:
  (a) raw: ``Llama.create_chat_completion(stream=True)`` with exactly the messages the bot
      would send for this turn;
  (b) bot: a console ``MessageEvent`` through the router (identify, guards, plugin lookup),
      the agent (history from storage, budget, streaming) and storage writes.
The KV cache is reset before every run so both pay full prompt evaluation. The tool
plugins (calculator, imagine) are off in the benchmark server: grammar tool selection is a
deliberate extra model call; the run with the calculator on is ``ratio_total_with_tools``.

    .venv/bin/python bench/llm_overhead.py [--runs 5] [--max-tokens 64]

Final line: RESULT {"ratio_total": ..., "ratio_ttft": ..., "raw_tok_s": ..., "bot_tok_s": ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.agent import Turn
from agents.messages import to_openai_messages
from bot.app import App
from bot.config import Settings
from bot.events import CommandEvent, MessageEvent, Origin, Text, TextDelta

PROMPT = "Write three sentences about the sea."


def _raw_run(llama: Any, messages: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
    llama.reset()
    start = time.perf_counter()
    first = None
    pieces: list[str] = []
    for chunk in llama.create_chat_completion(
        messages=messages, max_tokens=max_tokens, temperature=0.0, stream=True
    ):
        text = chunk["choices"][0]["delta"].get("content") or ""
        if text:
            first = first or time.perf_counter()
            pieces.append(text)
    end = time.perf_counter()
    return {"total": end - start, "ttft": (first or end) - start, "text": "".join(pieces)}


async def _bot_run(app: App, origin: Origin, llama: Any) -> dict[str, Any]:
    async for _ in app.router.handle(CommandEvent(origin, "forget")):
        pass
    llama.reset()
    start = time.perf_counter()
    first = None
    answer = ""
    async for part in app.router.handle(MessageEvent(origin, PROMPT)):
        if isinstance(part, TextDelta) and part.text and first is None:
            first = time.perf_counter()
        elif isinstance(part, Text):
            answer = part.text
    end = time.perf_counter()
    return {"total": end - start, "ttft": (first or end) - start, "text": answer}


async def _measure(app: App, origin: Origin, runs: int, max_tokens: int) -> dict[str, Any]:
    engine = app.services.chat_model.engine  # type: ignore[attr-defined]
    identity = await app.services.storage.identify(origin)
    messages, _ = app.router.agent.context(Turn(origin, identity, PROMPT, [], None), [])
    raw_messages = to_openai_messages(messages, native=False)
    raw, bot = [], []
    await asyncio.to_thread(_raw_run, engine.llama, raw_messages, max_tokens)  # warm-up
    await _bot_run(app, origin, engine.llama)
    for _ in range(runs):
        raw.append(await asyncio.to_thread(_raw_run, engine.llama, raw_messages, max_tokens))
        bot.append(await _bot_run(app, origin, engine.llama))
    tokens = engine.count_tokens(bot[-1]["text"])
    raw_total = statistics.median(r["total"] for r in raw)
    bot_total = statistics.median(r["total"] for r in bot)
    return {
        "ratio_total": round(bot_total / raw_total, 4),
        "ratio_ttft": round(
            statistics.median(r["ttft"] for r in bot) / statistics.median(r["ttft"] for r in raw),
            4,
        ),
        "raw_tok_s": round(engine.count_tokens(raw[-1]["text"]) / raw_total, 1),
        "bot_tok_s": round(tokens / bot_total, 1),
        "raw_s": round(raw_total, 3),
        "bot_s": round(bot_total, 3),
        "same_output": raw[-1]["text"].strip() == bot[-1]["text"].strip(),
        "completion_tokens": tokens,
    }


async def main(runs: int, max_tokens: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            llm={"temperature": 0.0, "max_tokens": max_tokens, "n_ctx": 2048},
            plugins={
                "disable_entry_points": True,
                "enabled": {"calculator": False, "imagine": False},
            },
            limits={"user_burst": 1000},
        )
        async with await App.start(settings) as app:
            origin = Origin("console", "bench", "console", "bencher", user_name="bencher")
            result = await _measure(app, origin, runs, max_tokens)
            await app.services.plugins.set_enabled(
                (await app.services.storage.identify(origin)).server_pk, "calculator", True
            )
            with_tools = await _bot_run(app, origin, app.services.chat_model.engine.llama)  # type: ignore[attr-defined]
            result["ratio_total_with_tools"] = round(with_tools["total"] / result["raw_s"], 3)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    print("RESULT " + json.dumps(asyncio.run(main(args.runs, args.max_tokens))))
