"""The escape suite: code that tries to do harm from the sandbox fails to, and the bot's
process (this test process) goes on. Each story runs real code in real bubblewrap."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from core.errors import SandboxUnavailable
from sandbox import Limits, RunResult, Sandbox

pytestmark = pytest.mark.asyncio

PROJECT = Path(__file__).resolve().parents[2]
SANDBOX = Sandbox(Limits(wall_s=8, cpu_s=5, memory_mb=768, tmpfs_mb=16, file_mb=4))
WHY_NOT = SANDBOX.why_unavailable()
if WHY_NOT is not None:
    if os.environ.get("CI"):  # CI installs bubblewrap (.ci/run): there this must run
        raise RuntimeError(f"CI has no sandbox: {WHY_NOT}")
    pytest.skip(f"no sandbox here: {WHY_NOT}", allow_module_level=True)


async def run(code: str) -> RunResult:
    return await SANDBOX.run(code)


async def test_a_sum_is_printed() -> None:
    result = await run("print(sum(range(101)))")
    assert (result.exit_code, result.output, result.timed_out) == (0, "5050\n", False)


async def test_numpy_and_matplotlib_work_and_a_plot_comes_back_as_a_png() -> None:
    result = await run(
        "import numpy as np\nimport matplotlib.pyplot as plt\n"
        "plt.plot(np.arange(10) ** 2)\nprint('drawn')"
    )
    assert result.output == "drawn\n", result.output
    [(name, data)] = result.images
    assert name == "figure_1.png" and data.startswith(b"\x89PNG\r\n\x1a\n")


async def test_no_network_at_all() -> None:
    code = (
        "import socket\n"
        "for host, port in [('127.0.0.1', 5432), ('127.0.0.1', 6379), ('1.1.1.1', 53)]:\n"
        "    s = socket.socket(); s.settimeout(2)\n"
        "    try:\n        s.connect((host, port)); print('CONNECTED', host)\n"
        "    except OSError as exc: print('refused', type(exc).__name__)\n"
        "try:\n    socket.getaddrinfo('pypi.org', 443); print('RESOLVED')\n"
        "except OSError: print('no dns')\n"
    )
    result = await run(code)
    assert "CONNECTED" not in result.output and "RESOLVED" not in result.output, result.output
    assert result.output.count("refused") == 3 and "no dns" in result.output


async def test_the_bots_environment_secrets_and_files_are_out_of_reach(tmp_path: Path) -> None:
    secret = tmp_path / "token.txt"
    secret.write_bytes(b"s3cret-token")
    project = PROJECT
    os.environ["ATELIER_TEST_SECRET"] = "s3cret-token"
    try:
        code = (
            "import os\nprint(sorted(k for k in os.environ if 'ATELIER' in k))\n"
            "for path in ['/etc/shadow', '/etc/passwd', "
            f"{str(secret)!r}, {str(project / 'pyproject.toml')!r}, {__file__!r}]:\n"
            "    try:\n        open(path, 'rb').read(); print('READ', path)\n"
            "    except OSError as exc: print('no', path, type(exc).__name__)\n"
            "print(open('/proc/1/environ', 'rb').read())\n"
            "print(os.listdir('/root'), os.listdir('/'))\n"
        )
        result = await run(code)
    finally:
        del os.environ["ATELIER_TEST_SECRET"]
    lines = result.output.splitlines()
    assert lines[0] == "[]", result.output
    assert "s3cret" not in result.output and "READ" not in result.output, result.output
    # pid 1 is bubblewrap's reaper: it runs with a bare environment of its own.
    assert "ATELIER" not in lines[-2] and "HOME" not in lines[-2], result.output
    assert "'work'" in lines[-1] and "'home'" not in lines[-1], lines[-1]


async def test_nothing_outside_the_tmpfs_can_be_written() -> None:
    code = (
        "import os\n"
        "for path in ['/usr/evil', '/sandbox/runner.py', '/sandbox/site/x', '/evil',\n"
        "             '/proc/evil', '/etc/evil']:\n"
        "    try:\n        open(path, 'w').write('x'); print('WROTE', path)\n"
        "    except OSError as exc: print('no', path)\n"
        "open('/work/ok.txt', 'w').write('fine'); print('tmpfs ok')\n"
    )
    result = await run(code)
    assert "WROTE" not in result.output and "tmpfs ok" in result.output, result.output


async def test_host_processes_cannot_be_seen_or_signalled() -> None:
    code = (
        "import os, signal\n"
        "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
        f"try:\n    os.kill({os.getpid()}, signal.SIGKILL); print('KILLED')\n"
        "except OSError as exc: print('no', type(exc).__name__)\n"
    )
    result = await run(code)
    pids = eval(result.output.splitlines()[0])  # a list of small ints
    assert max(pids) < 20 and os.getpid() not in pids, result.output
    assert "KILLED" not in result.output


async def test_a_fork_bomb_is_contained() -> None:
    started = time.monotonic()
    result = await run("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass")
    assert time.monotonic() - started < 12
    assert result.timed_out or result.exit_code != 0
    assert (await run("print('still here')")).output == "still here\n"


async def test_memory_cpu_and_sleep_are_limited() -> None:
    big = await run("x = bytearray(20 * 1024**3)\nprint('ALLOCATED')")
    assert "ALLOCATED" not in big.output and "MemoryError" in big.output, big.output
    loop = await run("while True: pass")
    assert loop.exit_code != 0 and "ALLOCATED" not in loop.output
    started = time.monotonic()
    sleeper = await run("import time\ntime.sleep(60)\nprint('WOKE')")
    assert sleeper.timed_out and "WOKE" not in sleeper.output
    assert time.monotonic() - started < 12


async def test_a_flood_of_output_is_cut_and_files_are_bounded() -> None:
    flood = await run("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 1_000_000)")
    assert flood.truncated and len(flood.output) <= SANDBOX.limits.output_chars
    many = await run(
        "import os\nn = 0\ntry:\n    for n in range(1_000_000):\n"
        "        open(f'/work/{n}', 'w').close()\nexcept OSError as exc: print('stopped', n)\n"
    )
    # Stopped by the file limit, or killed when its inodes pass the memory cgroup's cap.
    assert "stopped" in many.output or many.exit_code != 0, many
    full = await run(
        "try:\n    open('/work/big', 'wb').write(b'x' * (64 * 1024**2)); print('FULL WRITE')\n"
        "except OSError as exc: print('no space', type(exc).__name__)"
    )
    assert "FULL WRITE" not in full.output, full.output


async def test_a_background_process_is_gone_when_the_run_ends() -> None:
    marker = f"atelier-bg-{os.getpid()}"
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}],"
        " start_new_session=True)\nprint('spawned')"
    )
    result = await run(code)
    assert result.output == "spawned\n"
    await asyncio.sleep(0.2)
    left = [p for p in os.listdir("/proc") if p.isdigit() and marker.encode() in _cmdline(p)]
    assert left == []


async def test_ctypes_cannot_reach_beyond_the_sandbox() -> None:
    code = (
        "import ctypes, ctypes.util\n"
        "libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')\n"
        "print('unshare', libc.unshare(0x10000000))\n"  # CLONE_NEWUSER
        "print('mount', libc.mount(b'none', b'/usr', b'tmpfs', 0, None))\n"
        "print('uid', libc.getuid())\n"
    )
    result = await run(code)
    lines = dict(line.split() for line in result.output.splitlines())
    assert lines == {"unshare": "-1", "mount": "-1", "uid": "65534"}, result.output


async def test_without_bubblewrap_it_refuses_and_never_runs_unsandboxed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    fresh = Sandbox()
    with pytest.raises(SandboxUnavailable, match=r"bubblewrap \(bwrap\) is not installed"):
        await fresh.run("print(1)")


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
