"""llama.cpp's log output, routed into ``logging`` instead of stderr.

This module must never print: the console chat shares the terminal.
"""

from __future__ import annotations

import ctypes
import logging

import llama_cpp

# llama.cpp's ggml_log_level: 1 DEBUG, 2 INFO, 3 WARN, 4 ERROR, 5 continue the last line.
# llama-cpp-python's own mapping predates that numbering and prints llama.cpp's routine
# warnings (e.g. about its KV-cache layout, at every load) straight to stderr, over the
# console. Route them into logging instead, one level quieter except errors: what users
# need to see is our ModelError, not llama.cpp's internal choices.
_LLAMA_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.ERROR}
_llama_log = logging.getLogger("llama.cpp")


class _LlamaLogs:
    """Collects llama.cpp's log fragments into lines for ``logging``."""

    def __init__(self) -> None:
        self.level = logging.DEBUG
        self.partial = ""

    def feed(self, level: int, text: str) -> None:
        if level != 5:
            self.level = _LLAMA_LEVELS.get(level, logging.DEBUG)
        self.partial += text
        while "\n" in self.partial:
            line, self.partial = self.partial.split("\n", 1)
            if line.strip():
                _llama_log.log(self.level, "%s", line)


_logs = _LlamaLogs()


@llama_cpp.llama_log_callback
def _on_llama_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    _logs.feed(int(level), text.decode("utf-8", errors="replace"))


def route_llama_logs() -> None:
    """Send llama.cpp's own log lines to the ``llama.cpp`` logger (idempotent)."""
    llama_cpp.llama_log_set(_on_llama_log, ctypes.c_void_p(0))
