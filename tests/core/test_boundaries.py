"""The core never imports platform SDKs or torch/diffusers (STYLE 1 and 2)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("discord", "telegram", "torch", "diffusers")
CORE_MODULES = [
    "bot.app",
    "bot.router",
    "bot.plugins",
    "bot.commands",
    "bot.config",
    "agents.agent",
    "plugins.admin",
    "plugins.calculator",
    "storage.repository",
]


def test_the_core_imports_no_platform_sdk_and_no_torch() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    leaks = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert leaks == []
