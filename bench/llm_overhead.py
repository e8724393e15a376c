"""What a chat turn costs a user over the bare model: raw llama-cpp-python vs the bot.

One process, one loaded model (the configured default: the bundled SmolLM2-135M unless
``llm.model_path`` says otherwise), greedy sampling, the same ``max_tokens``. Each of
``--runs`` rounds runs, in this order:
  (a) raw: ``Llama.create_chat_completion(stream=True)`` of exactly the messages the bot
      builds for this turn: one plain completion, no tools;
  (b) bot: a console ``MessageEvent`` through the router (identify, guards, plugin lookup),
      the agent (history from storage, budget, streaming) and storage writes, with the
      DEFAULT plugin enablement, so the model is offered the default tools
      (``calculate``, ``generate_image``) as in a real turn. In grammar tool mode (every
      chat format without native tool calls, ChatML included) that is an extra
      constrained model call that picks a tool or "answer" before the reply: part of what
      a user waits for, so part of the measurement;
  (c) bot, tools off: the same on a second server, identical prompt, where calculator and
      imagine are disabled: what the core costs without the tool-choice step;
  (d) bot, every tool offered: (b) with ``[agent] tool_hints`` off, so the model is offered
      every enabled tool whatever the message says (the behaviour before tool hints);
  (e) (d) and (a) warm, as in a running bot: the same turn again right after itself, so
      what the previous turn cached (the system prompt with the tools, the history) is
      reused on both sides: ``ratio_total_with_tools`` (cold: ``..._cold``);
  (f) a new conversation in a running bot: another user's first turn in the same server
      right after the first user's, every tool offered; raw: that user's messages right
      after the first user's (llama-cpp-python keeps its last prompt). Both reuse what
      the two prompts share: ``ratio_total_with_tools_new_chat``.
With tool hints (the default) a tool is offered only for a message matching its hint, so
for this prompt (b) usually offers none: ``tools_offered`` lists what (b) offered.
Raw runs use a second copy of the model with the engine's thread counts; the raw
cache is reset and the engine's slots forget their prompts before every run, so all pay
full prompt evaluation. Ratios are
medians of (b) or (c) over the median of (a).

The prompt needs no tool (``--prompt`` to try others). A small model may call one anyway;
such runs are kept in the medians and counted in ``tool_calls_in_bot_runs`` (by tool
name, over all runs) and ``images_in_bot_runs``, never dropped. So that a stray
``generate_image`` stays cheap, the imagine plugin uses the bundled demo model at 64x64
pixels, 2 steps (built on first use, inside that run's time). No setting here changes
the prompt.

    .venv/bin/python bench/llm_overhead.py [--runs 5] [--max-tokens 64] [--prompt TEXT]

Final line: RESULT {"ratio_total": ..., "ratio_ttft": ..., "ratio_total_tools_off": ...,
"ratio_ttft_tools_off": ..., "same_output": ..., "tool_calls_in_bot_runs": {...}, ...}
(``ratio_*``: bot time over raw time, 1.0 = free; ``*_s`` in seconds, medians.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import llama_cpp

from agents.agent import Turn
from agents.factory import resolve_model_path
from bot.app import App
from bot.config import Settings
from core.events import CommandEvent, Image, MessageEvent, Origin, Progress, Text, TextDelta

# Needs no tool, and the bundled SmolLM2-135M's choice step picks "answer" for it (it
# picks ``calculate`` for many other plain prompts, e.g. "Write three sentences about
# the sea."; try them with --prompt).
PROMPT = "Write a short poem about friendship."
TOOL_PLUGINS = ("calculator", "imagine")
# What a stray generate_image call may cost: the demo model, 64x64 pixels at most, 2 steps.
TINY_IMAGES = {
    "default_width": 64,
    "default_height": 64,
    "max_width": 64,
    "max_height": 64,
    "default_steps": 2,
}


def _origin(server_id: str, user: str = "bencher") -> Origin:
    # Same names on both servers: the system prompt (which names them) is identical.
    return Origin("console", server_id, "console", user, user_name=user, server_name="bench")


def raw_model(llm: Any, n_ctx: int) -> Any:
    """The configured model loaded plainly, threads as the engine uses them."""
    threads = llm.n_threads or os.cpu_count() or 1
    return llama_cpp.Llama(
        model_path=str(resolve_model_path(llm)),
        n_ctx=n_ctx,
        n_batch=min(llm.n_batch, n_ctx),
        n_threads=threads,
        n_threads_batch=threads,
        chat_format=llm.chat_format,
        verbose=False,
    )


def _raw_run(
    llama: Any, messages: list[dict[str, Any]], max_tokens: int, *, warm: bool = False
) -> dict[str, Any]:
    if not warm:
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


async def _bot_run(app: App, origin: Origin, prompt: str, *, warm: bool = False) -> dict[str, Any]:
    async for _ in app.router.handle(CommandEvent(origin, "forget")):
        pass
    engine = app.services.chat_model.engine  # type: ignore[attr-defined]
    if not warm:
        engine.forget_prefixes()
    start = time.perf_counter()
    first = None
    answer = ""
    tools: list[str] = []
    images = 0
    async for part in app.router.handle(MessageEvent(origin, prompt)):
        if isinstance(part, TextDelta) and part.text and first is None:
            first = time.perf_counter()
        elif isinstance(part, Text):
            answer = part.text
        elif isinstance(part, Progress) and part.label.startswith("using "):
            tools.append(part.label.removeprefix("using "))  # the agent's per-call notice
        elif isinstance(part, Image):
            images += 1
    end = time.perf_counter()
    return {
        "total": end - start,
        "ttft": (first or end) - start,
        "text": answer,
        "tools": tools,
        "images": images,
    }


async def raw_messages(app: App, origin: Origin, prompt: str) -> list[dict[str, Any]]:
    """The messages the bot sends for this turn, as the chat template receives them."""
    identity = await app.services.storage.identify(origin)
    messages, _ = app.router.agent.context(Turn(origin, identity, prompt, [], None), [])
    return app.services.chat_model.wire_messages(messages)  # type: ignore[attr-defined,no-any-return]


def _record_offers(app: App) -> list[list[str]]:
    """The names of the tools each turn from now on offers the model, as the router
    decided them (hints, availability, enabled plugins)."""
    offers: list[list[str]] = []
    run = app.router.agent.run

    def recording(turn: Turn) -> Any:
        offers.append([tool.name for tool in turn.tools])
        return run(turn)

    app.router.agent.run = recording  # type: ignore[method-assign]
    return offers


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def _ratio(bot: list[dict[str, Any]], raw: list[dict[str, Any]], key: str = "total") -> float:
    return round(_median(bot, key) / _median(raw, key), 4)


def _ratios(bot: list[dict[str, Any]], raw: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
    return {
        f"ratio_total{suffix}": _ratio(bot, raw),
        f"ratio_ttft{suffix}": _ratio(bot, raw, "ttft"),
    }


async def _measure(app: App, runs: int, max_tokens: int, prompt: str) -> dict[str, Any]:
    engine = app.services.chat_model.engine  # type: ignore[attr-defined]
    raw_llama = raw_model(app.services.settings.llm, engine.n_ctx)
    tools_on, tools_off = _origin("bench-tools"), _origin("bench-no-tools")
    newcomer = _origin("bench-tools", "newcomer")
    server_pk = (await app.services.storage.identify(tools_off)).server_pk
    for name in TOOL_PLUGINS:
        await app.plugins.set_enabled(server_pk, name, False)
    messages = await raw_messages(app, tools_on, prompt)
    assert messages == await raw_messages(app, tools_off, prompt)
    newcomer_messages = await raw_messages(app, newcomer, prompt)
    raw, on, off, every = [], [], [], []
    every_warm: list[dict[str, Any]] = []
    raw_warm: list[dict[str, Any]] = []
    new_chat: list[dict[str, Any]] = []
    raw_new_chat: list[dict[str, Any]] = []
    agent_settings = app.services.settings.agent
    await asyncio.to_thread(_raw_run, raw_llama, messages, max_tokens)  # warm-up
    await _bot_run(app, tools_on, prompt)
    await _bot_run(app, tools_off, prompt)
    offers = _record_offers(app)
    for _ in range(runs):
        raw.append(await asyncio.to_thread(_raw_run, raw_llama, messages, max_tokens))
        on.append(await _bot_run(app, tools_on, prompt))
        offered = offers[-1]
        off.append(await _bot_run(app, tools_off, prompt))
        agent_settings.tool_hints = False  # (d): every enabled tool offered, hint or not
        every.append(await _bot_run(app, tools_on, prompt))
        # (e) = (d) in a running bot: the previous turn's prompt is still cached, on both
        # sides (llama-cpp-python reuses its prefix too when not reset).
        await _bot_run(app, tools_on, prompt, warm=True)
        every_warm.append(await _bot_run(app, tools_on, prompt, warm=True))
        offered_all = offers[-1]
        # (f): the first user's turn with nothing else cached, then the newcomer's.
        await _bot_run(app, tools_on, prompt)
        new_chat.append(await _bot_run(app, newcomer, prompt, warm=True))
        agent_settings.tool_hints = True
        await asyncio.to_thread(_raw_run, raw_llama, messages, max_tokens)
        raw_new_chat.append(
            await asyncio.to_thread(_raw_run, raw_llama, newcomer_messages, max_tokens, warm=True)
        )
        await asyncio.to_thread(_raw_run, raw_llama, messages, max_tokens)
        raw_warm.append(
            await asyncio.to_thread(_raw_run, raw_llama, messages, max_tokens, warm=True)
        )
    raw_llama.close()
    tokens = engine.count_tokens(on[-1]["text"])
    return {
        **_ratios(on, raw, ""),
        **_ratios(off, raw, "_tools_off"),
        **_ratios(every, raw, "_all_tools_offered"),
        **_ratios(every_warm, raw_warm, "_all_tools_offered_warm"),
        "ratio_total_with_tools": _ratio(every_warm, raw_warm),
        "ratio_total_with_tools_cold": _ratio(every, raw),
        "ratio_total_with_tools_new_chat": _ratio(new_chat, raw_new_chat),
        **_ratios(new_chat, raw_new_chat, "_new_chat"),
        "tools_offered": offered,
        "tools_offered_all": offered_all,
        "same_output": raw[-1]["text"].strip() == on[-1]["text"].strip(),
        "same_output_tools_off": raw[-1]["text"].strip() == off[-1]["text"].strip(),
        "tool_calls_in_bot_runs": dict(Counter(t for run in on for t in run["tools"])),
        "images_in_bot_runs": sum(run["images"] for run in on),
        "tool_calls_all_tools_offered": dict(
            Counter(t for run in [*every, *every_warm] for t in run["tools"])
        ),
        "tokens_all_tools_offered_warm": engine.count_tokens(every_warm[-1]["text"]),
        "tokens_raw_warm": engine.count_tokens(raw_warm[-1]["text"]),
        "same_output_all_tools_offered": raw[-1]["text"].strip() == every[-1]["text"].strip(),
        "raw_tok_s": round(engine.count_tokens(raw[-1]["text"]) / _median(raw, "total"), 1),
        "bot_tok_s": round(tokens / _median(on, "total"), 1),
        "raw_s": round(_median(raw, "total"), 3),
        "bot_s": round(_median(on, "total"), 3),
        "bot_tools_off_s": round(_median(off, "total"), 3),
        "completion_tokens": tokens,
        "runs": runs,
        "prompt": prompt,
    }


async def main(runs: int, max_tokens: int, prompt: str, tool_pass: str = "auto") -> dict[str, Any]:
    """Start the bot with the default model and plugins, measure, return the RESULT."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            llm={"temperature": 0.0, "max_tokens": max_tokens, "tool_pass": tool_pass},
            # Only the built-ins, as shipped.
            plugins={"disable_entry_points": True, "config": {"imagine": TINY_IMAGES}},
            limits={"user_burst": 1000, "server_burst": 1000},
        )
        async with await App.start(settings) as app:
            return {**await _measure(app, runs, max_tokens, prompt), "tool_pass": tool_pass}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--prompt", default=PROMPT, help="a message that needs no tool")
    parser.add_argument("--tool-pass", default="auto", choices=["auto", "one", "choice"])
    args = parser.parse_args()
    result = asyncio.run(main(args.runs, args.max_tokens, args.prompt, args.tool_pass))
    print("RESULT " + json.dumps(result))
