"""The code plugin's done-when line in the console: an admin enables it, ``/run`` of a sum
prints the sum, and a matplotlib snippet comes back as an ``[image]``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox import Sandbox
from tests.test_cli import REPO, _atelier

WHY_NOT = Sandbox().why_unavailable()
if WHY_NOT is not None:
    if os.environ.get("CI"):  # CI installs bubblewrap (.ci/run): there this must run
        raise RuntimeError(f"CI has no sandbox: {WHY_NOT}")
    pytest.skip(f"no sandbox here: {WHY_NOT}", allow_module_level=True)

pytestmark = pytest.mark.model

SESSION = """/plugins enable code
/run print(sum([19, 23]))
/run import matplotlib.pyplot as plt; plt.bar(['a', 'b'], [3, 5]); print("drew")
"""


def test_the_console_runs_code_and_shows_the_plot(tmp_path: Path) -> None:
    result = _atelier(
        "--config",
        str(REPO / "config.toml"),
        "--data-dir",
        str(tmp_path / "data"),
        "chat",
        "--admin",
        cwd=tmp_path,
        stdin=SESSION,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "Plugin code is now enabled in this server.",
        "```",
        "42",
        "```",
    ], result.stdout
    assert lines[4:8] == ["```", "drew", "```", "(1 image)"], result.stdout
    image = lines[8]
    assert image.startswith("[image] ") and image.endswith(".png"), result.stdout
    assert Path(image.removeprefix("[image] ").splitlines()[0]).read_bytes()[:4] == b"\x89PNG"
