"""Real MCP servers for the mcp plugin's tests: the stdio one is started by the bot, the
streamable-HTTP one here, on a free loopback port, and can be killed and restarted."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpServer:
    """``python -m tests.mcp_plugin.server http PORT`` as a child process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/mcp"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.mcp_plugin.server", "http", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("the MCP test server exited") from None
                time.sleep(0.1)
        raise RuntimeError("the MCP test server did not listen")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture(scope="module")
def http_server() -> Iterator[HttpServer]:
    """A streamable-HTTP MCP server on loopback for the module."""
    server = HttpServer(free_port())
    server.start()
    yield server
    server.kill()


def stdio_server(**extra: object) -> dict[str, object]:
    """The config of the stdio test server (the bot starts it)."""
    return {
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-m", "tests.mcp_plugin.server", "stdio"],
        "cwd": str(ROOT),
        **extra,
    }
