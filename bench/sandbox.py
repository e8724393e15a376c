"""The sandbox's cost: ``print(1)`` in bubblewrap against a plain ``python -c`` subprocess.

Both sides start the same interpreter the same way from asyncio (a subprocess, output
read through a pipe); the sandboxed side adds the namespaces, binds, cgroup, limits and
the in-sandbox runner. Sides alternate, ``--runs`` each, medians and p99; then
``--concurrent`` sandboxed runs at once (the sandbox's own cap: ``--slots``) give runs
per second.

    .venv/bin/python bench/sandbox.py [--runs 60] [--concurrent 16] [--slots 2]

Final line: RESULT {"sandbox_p50_ms": ..., "raw_p50_ms": ..., "overhead_ms": ...,
"runs_per_s": ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import Limits, Sandbox


async def _raw() -> float:
    start = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-c", "print(1)", stdout=asyncio.subprocess.PIPE
    )
    output, _ = await process.communicate()
    assert output == b"1\n", output
    return time.perf_counter() - start


async def _sandboxed(box: Sandbox) -> float:
    start = time.perf_counter()
    result = await box.run("print(1)")
    assert result.output == "1\n", result
    return time.perf_counter() - start


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    box = Sandbox(Limits(), concurrency=args.slots)
    reason = box.why_unavailable()
    if reason is not None:
        raise SystemExit(f"no sandbox here: {reason}")
    raw: list[float] = []
    boxed: list[float] = []
    await _raw(), await _sandboxed(box)  # warm the page cache
    for _ in range(args.runs):
        raw.append(await _raw())
        boxed.append(await _sandboxed(box))
    start = time.perf_counter()
    await asyncio.gather(*(_sandboxed(box) for _ in range(args.concurrent)))
    rate = args.concurrent / (time.perf_counter() - start)
    return {
        "sandbox_p50_ms": _pct(boxed, 0.5),
        "raw_p50_ms": _pct(raw, 0.5),
        "overhead_ms": round(_pct(boxed, 0.5) - _pct(raw, 0.5), 2),
        "runs_per_s": round(rate, 1),
        "sandbox_p99_ms": _pct(boxed, 0.99),
        "raw_p99_ms": _pct(raw, 0.99),
        "runs": args.runs,
        "concurrent": args.concurrent,
        "slots": args.slots,
        "median_ratio": round(statistics.median(boxed) / statistics.median(raw), 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--slots", type=int, default=2)
    print("RESULT " + json.dumps(asyncio.run(main(parser.parse_args()))))
