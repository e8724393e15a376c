"""Moderation's cost on the router path, and its quality on the labelled set.

Two bots in one run, both with the default plugins and an instant fake chat model (no
LLM time): one with moderation off, one with it on (lists + classifier, the default
policy). Messages are the labelled set's fine ones, so both answer every message.

- **added latency** (``p50_ms``, ``p99_ms``): one message at a time, the moderated turn's
  percentile minus the plain turn's, alternating the bots ``--repeats`` times (medians).
  Beside it the raw library: ``profanity_check.predict_prob`` on one message
  (``raw_single_ms``).
- **throughput** (``msgs_per_s``): ``--concurrent`` conversations each sending their
  messages back to back through the moderated bot, so checks share classifier batches;
  ``plain_msgs_per_s`` is the same load without moderation and
  ``raw_batch_ms_per_msg`` the library on the whole batch at once.
- **quality**: false-positive rate on the fine messages and recall on the obfuscated
  abuse with lists + classifier (``fpr``, ``recall_obfuscated``); per layer in ``layers``.

    .venv/bin/python bench/moderation.py [--repeats 3] [--concurrent 200] [--turns 3]

Final line: RESULT {"p50_ms": ..., "p99_ms": ..., "msgs_per_s": ..., "fpr": ...,
"recall_obfuscated": ..., ...}
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.router import InstantChatModel  # noqa: E402
from bot.app import App  # noqa: E402
from bot.config import Settings  # noqa: E402
from core.events import MessageEvent, Origin, Text  # noqa: E402
from plugins.moderation.classifier import Classifier, load_predictor  # noqa: E402
from plugins.moderation.config import ModerationSettings  # noqa: E402
from plugins.moderation.evaluate import evaluate, load  # noqa: E402
from plugins.moderation.moderator import Moderator  # noqa: E402

SET = ROOT / "tests" / "data" / "moderation" / "labelled.jsonl"


def _settings(data_dir: Path, moderated: bool) -> Settings:
    return Settings(
        data_dir=data_dir,
        limits={"user_burst": 1_000_000, "server_burst": 1_000_000},
        plugins={"disable_entry_points": True, "enabled": {"moderation": moderated}},
    )


async def _turn(app: App, origin: Origin, text: str) -> float:
    start = time.perf_counter()
    final = None
    async for part in app.router.handle(MessageEvent(origin, text)):
        if isinstance(part, Text):
            final = part.text
    # A fine message moderation stops (a false positive) ends with an error line instead.
    assert final in ("fine, thank you", None), (text, final)
    return time.perf_counter() - start


async def _sequential(app: App, texts: list[str]) -> list[float]:
    origin = Origin("bench", "seq", "c", "u", user_name="u")
    return [await _turn(app, origin, text) for text in texts]


async def _concurrent(app: App, texts: list[str], conversations: int, turns: int) -> float:
    async def loop(index: int) -> None:
        origin = Origin("bench", f"s{index % 20}", f"c{index}", f"u{index}", user_name="u")
        for turn in range(turns):
            await _turn(app, origin, texts[(index * turns + turn) % len(texts)])

    start = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(conversations)))
    return conversations * turns / (time.perf_counter() - start)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _raw(texts: list[str]) -> tuple[float, float]:
    """The library alone: ms for one message at a time (median), ms a message in one batch."""
    from profanity_check import predict_prob  # type: ignore[import-untyped]

    singles = []
    for text in texts:
        start = time.perf_counter()
        predict_prob([text])
        singles.append(time.perf_counter() - start)
    start = time.perf_counter()
    predict_prob(texts)
    batch = (time.perf_counter() - start) / len(texts)
    return statistics.median(singles) * 1000, batch * 1000


async def main(args: argparse.Namespace) -> dict[str, Any]:
    items = load(SET)
    fine = [item.text for item in items if not item.abusive]
    layers = await evaluate(
        Moderator(Classifier(load_predictor()), None), items, ModerationSettings()
    )
    added50, added99, plain_rate, mod_rate, raw_single, raw_batch = [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        plain = await App.start(
            _settings(Path(tmp) / "plain", False), chat_model=InstantChatModel()
        )
        moderated = await App.start(
            _settings(Path(tmp) / "mod", True), chat_model=InstantChatModel()
        )
        try:
            await _sequential(plain, fine[:20])  # warm both (tables, caches, the model)
            await _sequential(moderated, fine[:20])
            for _ in range(args.repeats):
                base = await _sequential(plain, fine)
                checked = await _sequential(moderated, fine)
                added50.append(_pct(checked, 0.5) - _pct(base, 0.5))
                added99.append(_pct(checked, 0.99) - _pct(base, 0.99))
                plain_rate.append(await _concurrent(plain, fine, args.concurrent, args.turns))
                mod_rate.append(await _concurrent(moderated, fine, args.concurrent, args.turns))
                single, batch = _raw(fine)
                raw_single.append(single)
                raw_batch.append(batch)
        finally:
            await moderated.aclose()
            await plain.aclose()
    combined = layers["combined"]
    return {
        "p50_ms": round(statistics.median(added50), 3),
        "p99_ms": round(statistics.median(added99), 3),
        "msgs_per_s": round(statistics.median(mod_rate), 1),
        "fpr": combined["fpr"],
        "recall_obfuscated": combined["recall_obfuscated"],
        "plain_msgs_per_s": round(statistics.median(plain_rate), 1),
        "raw_single_ms": round(statistics.median(raw_single), 3),
        "raw_batch_ms_per_msg": round(statistics.median(raw_batch), 4),
        "messages": len(fine),
        "concurrent": args.concurrent,
        "layers": layers,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--turns", type=int, default=3)
    result = asyncio.run(main(parser.parse_args()))
    print("RESULT " + json.dumps(result))
