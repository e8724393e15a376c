"""Continuous batching: eight chats at once through the bot, against raw llama.cpp.

One process, one model file (the bundled SmolLM2-135M unless ``--model``), greedy
sampling, ``--max-tokens`` new tokens, the same eight prompts, every thread count the
engine uses (``--threads``, default: every core). Each of ``--runs`` rounds measures:
  (a) one stream: the raw high-level API (``Llama.create_chat_completion``), the eight
      prompts one after another: tokens per second of a single stream;
  (b) raw batched: a minimal low-level loop written here (one context with eight
      sequences, one ``llama_decode`` per step, one token per sequence, greedy, always
      ``--max-tokens`` tokens): the physical limit of this machine for this model;
  (c) bot: eight console users on eight servers send the prompts at once through the
      router, the agent, storage and the scheduler, default plugins on, ``parallel`` 8:
      tokens per second over the wall time, and each chat's time to first token; the
      chats' prompts share the system prompt's first tokens, which a slot may copy from
      another instead of evaluating them again: ``prefix_copies_8`` counts the copies,
      ``tok_s_bot_8_no_sharing`` is (c) with copying off (every prompt evaluated in full,
      as the raw loop does);
  (d) second turn: a conversation with about 1,500 tokens of history asks again through
      the engine: time to first token when its slot still holds the history (prefix
      reuse) and after the slots forgot it.
``ratio_total_with_tools`` comes from ``bench/llm_overhead.py`` in the same run, one pass
per turn: a turn where the model is offered every default tool, over the raw model
(1.0 = free), in a running bot (the previous turn's prompt cached on both sides);
``ratio_total_with_tools_cold`` with nothing cached.

    .venv/bin/python bench/llm_batch.py [--runs 3] [--max-tokens 64] [--threads N]

Final line: RESULT {"tok_s_one": ..., "tok_s_raw_batched": ..., "tok_s_bot_8": ...,
"ratio_vs_raw": ..., "speedup_vs_one": ..., "ttft_p50_ms_8": ..., "ttft_p99_ms_8": ...,
"second_turn_ttft_ms": ..., "second_turn_ttft_ms_no_reuse": ..., "ratio_total_with_tools":
...} (medians over the runs).
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import llama_cpp
from llama_cpp import llama_chat_format

import agents.batching as batching
import bench.llm_overhead as llm_overhead
from agents.factory import bundled_model_path
from agents.requests import ChatRequest
from bot.app import App
from bot.config import Settings
from core.events import CommandEvent, MessageEvent, Origin, TextDelta

PARALLEL = 8
PROMPTS = [
    "Write a long story about a lighthouse keeper.",
    "Write a long story about a dragon who loves books.",
    "Explain in detail how bread is baked.",
    "Describe a busy market in a small town in detail.",
    "Write a long letter to a friend about your holiday.",
    "Explain in detail how a bicycle works.",
    "Write a long story about a robot learning to sing.",
    "Describe the seasons of the year in detail.",
]
HISTORY_TOKENS = 1500


def _raw_llama(path: Path, chat_format: str, threads: int, n_ctx: int) -> Any:
    return llama_cpp.Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        chat_format=chat_format,
        verbose=False,
    )


def one_stream(llama: Any, conversations: list[list[dict[str, Any]]], max_tokens: int) -> float:
    """(a) tokens per second of one stream, prompt after prompt."""
    tokens, elapsed = 0, 0.0
    for messages in conversations:
        llama.reset()
        start = time.perf_counter()
        response = llama.create_chat_completion(
            messages=messages, max_tokens=max_tokens, temperature=0.0
        )
        elapsed += time.perf_counter() - start
        tokens += response["usage"]["completion_tokens"]
    return tokens / elapsed


def _prompt_tokens(llama: Any, chat_format: str, messages: list[dict[str, Any]]) -> list[int]:
    formatter = getattr(llama_chat_format, f"format_{chat_format.replace('-', '_')}")
    text = formatter(messages=messages).prompt
    return list(llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))


def raw_batched(
    llama: Any,
    conversations: list[list[dict[str, Any]]],
    chat_format: str,
    threads: int,
    max_tokens: int,
) -> float:
    """(b) the low-level loop: every sequence decoded together, one token each a step."""
    prompts = [_prompt_tokens(llama, chat_format, m) for m in conversations]
    n = len(prompts)
    per_seq = max(len(p) for p in prompts) + max_tokens + 8
    params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
    params.n_ctx, params.n_seq_max, params.kv_unified = per_seq * n, n, False
    params.n_batch = max(512, sum(len(p) for p in prompts))  # one call; llama.cpp splits
    params.n_ubatch = 512
    params.n_threads = params.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(llama._model.model, params)
    batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
    chain_params = llama_cpp.llama_sampler_chain_default_params()
    samplers = [llama_cpp.llama_sampler_chain_init(chain_params) for _ in prompts]
    for sampler in samplers:
        llama_cpp.llama_sampler_chain_add(sampler, llama_cpp.llama_sampler_init_greedy())

    def add(i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, logits

    start = time.perf_counter()
    rows: list[int] = []
    for seq, tokens in enumerate(prompts):
        for pos, token in enumerate(tokens):
            add(batch.n_tokens, token, pos, seq, pos == len(tokens) - 1)
            batch.n_tokens += 1
        rows.append(batch.n_tokens - 1)
    assert llama_cpp.llama_decode(ctx, batch) == 0
    positions = [len(p) for p in prompts]
    for _ in range(max_tokens):
        nexts = [llama_cpp.llama_sampler_sample(samplers[seq], ctx, rows[seq]) for seq in range(n)]
        batch.n_tokens = 0
        for seq, token in enumerate(nexts):
            add(seq, token, positions[seq], seq, True)
            positions[seq] += 1
            rows[seq] = seq
        batch.n_tokens = n
        assert llama_cpp.llama_decode(ctx, batch) == 0
    elapsed = time.perf_counter() - start
    for sampler in samplers:
        llama_cpp.llama_sampler_free(sampler)
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    return n * max_tokens / elapsed


def _origins() -> list[Origin]:
    return [
        Origin("console", f"bench-{i}", "console", f"user-{i}", user_name="bencher")
        for i in range(len(PROMPTS))
    ]


async def bot_eight(app: App) -> dict[str, Any]:
    """(c) eight chats at once through the whole bot."""
    engine = app.services.chat_model.engine  # type: ignore[attr-defined]
    origins = _origins()
    for origin in origins:
        async for _ in app.router.handle(CommandEvent(origin, "forget")):
            pass
    engine.forget_prefixes()
    start = time.perf_counter()

    async def chat(origin: Origin, prompt: str) -> tuple[float, str]:
        first, text = None, []
        async for part in app.router.handle(MessageEvent(origin, prompt)):
            if isinstance(part, TextDelta) and part.text:
                first = first or time.perf_counter()
                text.append(part.text)
        return (first or time.perf_counter()) - start, "".join(text)

    copies = engine.scheduler_stats.prefix_copies
    results = await asyncio.gather(*(chat(o, p) for o, p in zip(origins, PROMPTS, strict=True)))
    wall = time.perf_counter() - start
    tokens = sum(engine.count_tokens(text) for _, text in results)
    return {
        "tok_s": tokens / wall,
        "ttft": [t for t, _ in results],
        "tokens": tokens,
        "copies": engine.scheduler_stats.prefix_copies - copies,
    }


async def bot_eight_unshared(app: App) -> dict[str, Any]:
    """(c) with no prefix copied between slots."""
    shared = batching.SHARE_MIN_TOKENS
    batching.SHARE_MIN_TOKENS = 1 << 30  # read by the scheduler at each admission
    try:
        return await bot_eight(app)
    finally:
        batching.SHARE_MIN_TOKENS = shared


def _history(engine: Any) -> list[dict[str, str]]:
    paragraph = (
        "The harbour town kept its old customs: boats were painted every spring, the "
        "market opened at dawn, and the lighthouse keeper wrote the weather in a book. "
    )
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    while engine.count_tokens(" ".join(m["content"] for m in messages)) < HISTORY_TOKENS:
        messages += [
            {"role": "user", "content": "Tell me more about the town. " + paragraph * 2},
            {"role": "assistant", "content": paragraph * 3},
        ]
    return [*messages, {"role": "user", "content": "What did the keeper write?"}]


async def _ttft(engine: Any, messages: list[dict[str, str]]) -> float:
    request = ChatRequest(messages=messages, max_tokens=8, temperature=0.0, seed=0)
    start = time.perf_counter()
    async for chunk in engine.stream_chat(request):
        if chunk["choices"][0]["delta"].get("content"):
            break
    return time.perf_counter() - start


async def second_turn(app: App) -> tuple[float, float]:
    """(d) time to first token of the next turn, with and without its cached prefix."""
    engine = app.services.chat_model.engine  # type: ignore[attr-defined]
    history = _history(engine)
    first = await engine.complete_chat(ChatRequest(messages=history, max_tokens=16, seed=0))
    turn = [
        *history,
        {"role": "assistant", "content": first["choices"][0]["message"]["content"] or "."},
        {"role": "user", "content": "And what about the market?"},
    ]
    engine.forget_prefixes()
    await engine.complete_chat(ChatRequest(messages=history, max_tokens=16, seed=0))
    reused = await _ttft(engine, turn)
    engine.forget_prefixes()
    fresh = await _ttft(engine, turn)
    return reused, fresh


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(runs: int, max_tokens: int, threads: int, model: Path | None) -> dict[str, Any]:
    """Measure (a)-(d) and the tools ratio; return the RESULT."""
    path = model or bundled_model_path()
    chat_format = "chatml" if model is None else "gemma"
    raw = _raw_llama(path, chat_format, threads, 2048)
    one, batched, bot, reuse, fresh, ttfts = [], [], [], [], [], []
    unshared: list[float] = []
    copies: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            llm={
                "model_path": str(path) if model else "",
                "chat_format": chat_format,
                "temperature": 0.0,
                "max_tokens": max_tokens,
                "parallel": PARALLEL,
                "n_threads": threads,
            },
            plugins={"disable_entry_points": True},
            limits={"user_burst": 1000, "server_burst": 1000},
        )
        async with await App.start(settings) as app:
            # The raw runs get exactly the messages the bot sends (system prompt included).
            conversations = [
                await llm_overhead.raw_messages(app, origin, prompt)
                for origin, prompt in zip(_origins(), PROMPTS, strict=True)
            ]
            await bot_eight(app)  # warm-up
            for _ in range(runs):
                one.append(await asyncio.to_thread(one_stream, raw, conversations, max_tokens))
                batched.append(
                    await asyncio.to_thread(
                        raw_batched, raw, conversations, chat_format, threads, max_tokens
                    )
                )
                result = await bot_eight(app)
                bot.append(result["tok_s"])
                ttfts += result["ttft"]
                copies.append(result["copies"])
                unshared.append((await bot_eight_unshared(app))["tok_s"])
                with_reuse, without = await second_turn(app)
                reuse.append(with_reuse)
                fresh.append(without)
            tokens = result["tokens"]
    raw.close()
    # One pass per turn with tools, as "auto" gives models of 1B parameters and more (the
    # bundled 135M model takes the choice step by default: llm_overhead.py measures it).
    tools = await llm_overhead.main(max(runs, 5), max_tokens, llm_overhead.PROMPT, tool_pass="one")
    med = statistics.median
    return {
        "tok_s_one": round(med(one), 1),
        "tok_s_raw_batched": round(med(batched), 1),
        "tok_s_bot_8": round(med(bot), 1),
        "ratio_vs_raw": round(med(bot) / med(batched), 3),
        "speedup_vs_one": round(med(bot) / med(one), 3),
        "tok_s_bot_8_no_sharing": round(med(unshared), 1),
        "ratio_vs_raw_no_sharing": round(med(unshared) / med(batched), 3),
        "speedup_vs_one_no_sharing": round(med(unshared) / med(one), 3),
        "prefix_copies_8": max(copies),
        "ttft_p50_ms_8": round(_p(ttfts, 0.5) * 1000, 1),
        "ttft_p99_ms_8": round(_p(ttfts, 0.99) * 1000, 1),
        "second_turn_ttft_ms": round(med(reuse) * 1000, 1),
        "second_turn_ttft_ms_no_reuse": round(med(fresh) * 1000, 1),
        "ratio_total_with_tools": tools["ratio_total_with_tools"],
        "ratio_total_with_tools_cold": tools["ratio_total_with_tools_cold"],
        "ratio_total_with_tools_new_chat": tools["ratio_total_with_tools_new_chat"],
        "ratio_total_default_turn": tools["ratio_total"],
        "bot_completion_tokens_8": tokens,
        "threads": threads,
        "parallel": PARALLEL,
        "model": path.name,
        "runs": runs,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--model", type=Path, help="a gemma-format GGUF instead of SmolLM2")
    args = parser.parse_args()
    result = asyncio.run(main(args.runs, args.max_tokens, args.threads, args.model))
    print("RESULT " + json.dumps(result))
