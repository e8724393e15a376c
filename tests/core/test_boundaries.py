"""The core never imports platform SDKs or torch/diffusers (STYLE 1 and 2), at run time.

``tests/test_layers.py`` checks the static import graph; this test imports every module
of the core, the foundation's torch-free packages, the plugins and the roof (all but the
platform adapters and the worker CLI) in a fresh interpreter and looks at what loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("discord", "telegram", "torch", "diffusers")
PACKAGES = ("core", "agents", "storage", "plugins", "bot")
# Allowed to load an SDK or torch: the adapters of one platform, the worker side.
EXEMPT = ("bot.adapters.discord", "bot.adapters.telegram", "storage.migrations")


def _modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if not name.startswith(EXEMPT):
                found.append(name)
    return found


def test_the_core_imports_no_platform_sdk_and_no_torch() -> None:
    modules = _modules()
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    loaded = json.loads(out.stdout)
    leaks = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert len(modules) > 40 and "core.plugin" in loaded and "bot.router" in loaded
    assert leaks == []
