"""What the mcp plugin adds to one MCP tool call: the raw SDK against the plugin's path.

One process, the test MCP server (``tests/mcp_plugin/server.py``, FastMCP) started twice
over stdio: (a) raw: the official SDK's ``ClientSession.call_tool("add", ...)`` on its own
session; (b) the plugin: a tool the agent would call, built by the core from the plugin's
tool source (``bot.tools.build_sourced``), through ``McpConnection.call`` (a ping to find
a dead session first, the adapters' tool, the result cut and converted). Sides alternate,
``--runs`` calls each, medians and p99. Then ``--concurrent`` plugin calls at once give
calls per second through the one shared connection.

    .venv/bin/python bench/mcp_calls.py [--runs 300] [--concurrent 32]

Final line: RESULT {"raw_p50_ms": ..., "plugin_p50_ms": ..., "overhead_ms": ...,
"ratio_p50": ..., "calls_per_s": ...}
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

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from bot.tools import build_sourced, tool_config
from core.caller import Caller
from core.events import Origin
from core.plugin import SourcedTool, ToolContext, ToolResult
from plugins.mcp.config import McpServer
from plugins.mcp.connection import McpConnection
from plugins.mcp.results import Limits, converted

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["-m", "tests.mcp_plugin.server", "stdio"]


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(runs: int, concurrent: int) -> dict[str, Any]:
    server = McpServer(transport="stdio", command=sys.executable, args=ARGS, cwd=str(ROOT))
    connection = McpConnection("calc", server, connect_timeout_s=30, max_tools=64)
    assert await connection.ready(30)
    remote = connection.tools["add"]

    async def call(arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        message = await connection.call(remote.name, arguments)
        return converted(message, "calc/add", None, Limits())

    tool = build_sourced(
        "mcp", SourcedTool("calc_add", "Add.", remote.parameters, call), lambda: 30
    )
    caller = Caller(Origin("console", "s", "c", "u"), 1, 1, 1)
    config = tool_config({"mcp": ToolContext(caller)})

    params = StdioServerParameters(command=sys.executable, args=ARGS, cwd=str(ROOT))
    raw: list[float] = []
    plugin: list[float] = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for n in range(runs + 20):  # the first 20 of each side warm up
            start = time.perf_counter()
            result = await session.call_tool("add", {"a": n, "b": 1})
            took = time.perf_counter() - start
            assert result.content[0].text == str(n + 1)  # type: ignore[union-attr]
            if n >= 20:
                raw.append(took)
            start = time.perf_counter()
            answer = await tool.ainvoke({"a": n, "b": 1}, config=config)
            took = time.perf_counter() - start
            assert isinstance(answer, ToolResult) and answer.text == str(n + 1), answer
            if n >= 20:
                plugin.append(took)

    start = time.perf_counter()
    answers = await asyncio.gather(
        *(tool.ainvoke({"a": n, "b": 2}, config=config) for n in range(concurrent * 4))
    )
    burst_s = time.perf_counter() - start
    assert [a.text for a in answers] == [str(n + 2) for n in range(concurrent * 4)]
    await connection.close()

    raw_p50, plugin_p50 = statistics.median(raw) * 1000, statistics.median(plugin) * 1000
    return {
        "raw_p50_ms": round(raw_p50, 3),
        "plugin_p50_ms": round(plugin_p50, 3),
        "overhead_ms": round(plugin_p50 - raw_p50, 3),
        "ratio_p50": round(plugin_p50 / raw_p50, 3),
        "raw_p99_ms": round(_p(raw, 0.99) * 1000, 3),
        "plugin_p99_ms": round(_p(plugin, 0.99) * 1000, 3),
        "calls_per_s": round(len(answers) / burst_s, 1),
        "runs": runs,
        "concurrent": concurrent * 4,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--concurrent", type=int, default=32)
    options = parser.parse_args()
    print("RESULT " + json.dumps(asyncio.run(main(options.runs, options.concurrent))))
