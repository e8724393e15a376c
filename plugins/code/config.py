"""The ``code`` plugin's settings, ``[plugins.config.code]`` in ``config.toml``.

The sandbox's limits and how many run at once are the operator's; how often one user
may run code is per server.
"""

from __future__ import annotations

from pydantic import Field

from core.config import Section, server


class CodeSettings(Section):
    """Settings of the code plugin."""

    wall_s: float = Field(10.0, gt=0, le=300, description="Seconds a run may take")
    cpu_s: int = Field(10, ge=1, le=300)
    memory_mb: int = Field(1024, ge=128, le=65_536)
    processes: int = Field(32, ge=4, le=4096)
    tmpfs_mb: int = Field(64, ge=1, le=4096, description="The run's working directory")
    output_chars: int = Field(4000, ge=100, le=100_000)
    concurrent: int = Field(2, ge=1, le=64, description="Sandboxes at once (more wait)")
    max_code_chars: int = Field(8000, ge=100, le=100_000)
    runs_per_minute: int = server(6, ge=1, le=600, description="Per user")
