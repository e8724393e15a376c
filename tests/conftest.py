"""Suite-wide isolation: tests that run the CLI in-process reconfigure root logging."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """Put the root logger's handlers and level back after each test.

    ``atelier``'s ``main()`` installs a handler on the stderr of the moment; under pytest
    that is a capture file closed after the test, and later log records would hit it.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
