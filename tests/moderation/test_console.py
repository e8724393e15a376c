"""Moderation's done-when line in the console, with the bundled models: an abusive and
an obfuscated message get the configured action and a log entry, a tricky-but-fine one
is answered, and the console prints what the platform would have been asked to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_cli import REPO, _atelier

pytestmark = pytest.mark.model

SESSION = """/plugins enable moderation
/mod policy profanity 0.5 timeout
you are a fucking idiot
f u c k you
kill the process please
/mod log
"""


def test_the_console_moderates_and_says_what_it_would_do(tmp_path: Path) -> None:
    result = _atelier(
        "--config",
        str(REPO / "config.toml"),
        "--data-dir",
        str(tmp_path / "data"),
        "chat",
        "--admin",
        cwd=tmp_path,
        stdin=SESSION,
        env={
            "ATELIER_LLM__SEED": "7",
            "ATELIER_LLM__MAX_TOKENS": "24",
            "ATELIER_LIMITS__USER_BURST": "50",
        },
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "Plugin moderation is now enabled in this server.",
        "profanity: from score 0.5 → timeout.",
    ], result.stdout
    removed = (
        "error: Your message was removed for profanity: a listed word, and you are timed out "
        "for 10 minutes."
    )
    for n in (1, 2):
        at = lines.index(f"[would delete message console-{n}]")
        assert lines[at + 1] == "[would time out 'me' for 10 minutes: moderation]", lines
        assert lines[at + 2] == removed, lines
    answer = lines[lines.index(removed, lines.index(removed) + 1) + 1]
    assert answer and not answer.startswith(("error:", "[would")), result.stdout
    log = [line for line in lines if re.match(r"#\d+ \d{4}-\d\d-\d\d ", line)]
    assert len(log) == 2 and all("→ timeout" in line for line in log), result.stdout
    assert "'f u c k you'" in log[0] and "'you are a fucking idiot'" in log[1], log
