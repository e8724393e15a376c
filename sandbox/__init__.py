"""Running untrusted Python: a fresh bubblewrap sandbox per run (``sandbox.bwrap``), with
a cgroup per run (``sandbox.cgroups``). Foundation layer: no chat code, no plugins."""

from sandbox.bwrap import Limits, RunResult, Sandbox

__all__ = ["Limits", "RunResult", "Sandbox"]
