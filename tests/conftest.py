"""Suite-wide isolation: tests that run the CLI in-process reconfigure root logging."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

MODEL_TIMEOUT_S = 300  # tests marked `model` load and run the real GGUF model


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give tests marked ``model`` a longer limit than the suite's default ``timeout``."""
    for item in items:
        if item.get_closest_marker("model") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(MODEL_TIMEOUT_S))


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
