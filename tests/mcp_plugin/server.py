"""A real MCP server for the tests, built with the official SDK's ``FastMCP``.

    python -m tests.mcp_plugin.server stdio
    python -m tests.mcp_plugin.server http PORT

Tools: ``add`` (numbers), ``dot`` (a PNG image), ``nap`` (sleeps, for timeouts),
``crash`` (the process dies mid-call), ``shout`` (a long text, for the size cap),
``secret`` (which of the bot's variables it can see) and ``grow`` (adds ``multiply``
and announces that the tool list changed).
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys

from mcp.server.fastmcp import Context, FastMCP, Image

# A 1×1 red PNG.
DOT = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def build(port: int = 0) -> FastMCP:
    """The server with its tools (``port`` for streamable HTTP)."""
    server = FastMCP("atelier-test", host="127.0.0.1", port=port or 8000, log_level="WARNING")

    @server.tool()
    def add(a: float, b: float) -> str:
        """Add two numbers."""
        total = a + b
        return str(int(total) if total == int(total) else total)

    @server.tool()
    def dot() -> Image:
        """Draw a small red dot."""
        return Image(data=DOT, format="png")

    @server.tool()
    async def nap(seconds: float) -> str:
        """Sleep, then say so."""
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    @server.tool()
    def crash() -> str:
        """Kill this server's process in the middle of the call."""
        os._exit(3)

    @server.tool()
    def shout(times: int) -> str:
        """Say AAAA many times."""
        return "A" * times

    @server.tool()
    def secret() -> str:
        """The environment variables this server was given (names only)."""
        return ",".join(sorted(os.environ))

    @server.tool()
    async def grow(ctx: Context) -> str:  # type: ignore[type-arg]
        """Add the multiply tool."""

        def multiply(a: float, b: float) -> str:
            """Multiply two numbers."""
            return str(a * b)

        server.add_tool(multiply)
        await ctx.session.send_tool_list_changed()
        return "multiply added"

    return server


if __name__ == "__main__":
    transport = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if transport == "http":
        build(int(sys.argv[2])).run(transport="streamable-http")
    else:
        build().run(transport="stdio")
