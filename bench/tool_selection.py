"""How well the default model chooses tools: a small labelled set, first model step only.

Thirty questions a new user might ask: twenty that need no tool and ten that need the
calculator. Each goes through the bot's own path to the model (the router's choice of
tools for the message, the agent's prompt, the chat model's tool-calling mode) with
greedy sampling, and the first step's decision is recorded:

- ``false_calls``: plain questions answered with a tool call (the user gets a tool's
  output instead of an answer);
- ``missed_calc``: arithmetic questions where the calculator was not called;
- ``right_args``: arithmetic questions whose generated expression gives the right number.

Each configuration is measured in the same run (``--configs``): ``hints`` is the default
(``[agent] tool_hints = true``: a tool is offered only for messages matching its hint),
``all`` offers every enabled tool on every turn (the behaviour before hints); a
``-choice`` suffix makes the model take the constrained "which tool?" step first instead
of answering or calling in one pass.

    .venv/bin/python bench/tool_selection.py [--configs hints,all]

Final line: RESULT {"hints": {...}, "all": {...}}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.agent import Turn
from bot.app import App
from bot.config import Settings
from core.events import Origin
from plugins.calculator import CalcError, evaluate

PLAIN = [
    "What is the capital of France?",
    "Who wrote Romeo and Juliet?",
    "Tell me a joke.",
    "How are you today?",
    "What colour is the sky?",
    "Give me a tip for sleeping better.",
    "What is the largest ocean on Earth?",
    "Translate 'thank you' into French.",
    "Who was Albert Einstein?",
    "Name three fruits.",
    "What does a cat eat?",
    "Write a short poem about the sea.",
    "Why do leaves change colour in autumn?",
    "What language is spoken in Brazil?",
    "Recommend a good book.",
    "What is photosynthesis?",
    "Hello!",
    "Say something nice.",
    "What is the boiling point of water?",
    "How do I make tea?",
]
CALC = [
    ("What is 12 times 7?", 84),
    ("Calculate 345 * 12.", 4140),
    ("What is 2 to the power of 10?", 1024),
    ("What is the square root of 144?", 12),
    ("How much is 15% of 80?", 12),
    ("Compute (17 + 5) * 3.", 66),
    ("What is 1000 divided by 8?", 125),
    ("What is 123 + 456?", 579),
    ("What is 9 squared?", 81),
    ("What is 7 * 8 - 6?", 50),
]


async def _first_step(app: App, origin: Origin, text: str) -> list[tuple[str, Any]]:
    """The tool calls of the model's first step for ``text``, as a turn makes it."""
    identity = await app.services.storage.identify(origin)
    enabled = await app.plugins.enabled_for(identity.server_pk)
    hints = app.services.settings.agent.tool_hints
    tools = [tool for loaded in enabled for tool in loaded.offered(text, hints=hints)]
    messages, _ = app.router.agent.context(Turn(origin, identity, text, tools, None), [])
    model = app.services.chat_model
    bound = model.bind_tools(tools) if tools else model
    # The decision, not the whole answer (one pass needs room for a call's JSON).
    reply = await bound.ainvoke(messages, max_tokens=64)
    calls = [(call["name"], call["args"]) for call in reply.tool_calls]
    return calls + [(call["name"] or "", None) for call in reply.invalid_tool_calls]


def _right(calls: list[tuple[str, Any]], want: float) -> bool:
    for name, args in calls:
        if name == "calculate" and isinstance(args, dict):
            try:
                return abs(float(evaluate(str(args.get("expression", ""))))) == abs(want)
            except (CalcError, TypeError, ValueError):
                return False
    return False


async def _measure(config: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            llm={"temperature": 0.0, "seed": 0, "n_ctx": 2048},
            agent={"tool_hints": config.startswith("hints")},
            # The bench's server has no documents, so a real turn never offers
            # search_knowledge (its availability check); offered() alone does not know.
            plugins={"disable_entry_points": True, "enabled": {"knowledge": False}},
            limits={"user_burst": 1000},
        )
        async with await App.start(settings) as app:
            # "-choice": the constrained "which tool?" step instead of one pass.
            app.services.chat_model.one_pass = not config.endswith("-choice")  # type: ignore[attr-defined]
            origin = Origin("console", "bench", "console", "bencher", user_name="bencher")
            started = time.perf_counter()
            plain = [await _first_step(app, origin, q) for q in PLAIN]
            calc = [await _first_step(app, origin, q) for q, _ in CALC]
            seconds = time.perf_counter() - started
    return {
        "false_calls": sum(1 for calls in plain if calls),
        "missed_calc": sum(1 for calls in calc if all(n != "calculate" for n, _ in calls)),
        "right_args": sum(_right(calls, want) for calls, (_, want) in zip(calc, CALC, strict=True)),
        "plain": len(PLAIN),
        "calc": len(CALC),
        "expressions": [
            next((a.get("expression") for n, a in calls if isinstance(a, dict)), None)
            for calls in calc
        ],
        "s": round(seconds, 1),
    }


async def main(configs: list[str]) -> dict[str, Any]:
    return {config: await _measure(config) for config in configs}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="hints,all,hints-choice,all-choice")
    args = parser.parse_args()
    print("RESULT " + json.dumps(asyncio.run(main(args.configs.split(",")))))
