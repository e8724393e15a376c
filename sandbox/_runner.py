"""Runs inside the sandbox: the user's code, then the images it made.

Reads the code from stdin and runs it as ``__main__`` with the offered packages on the
path (matplotlib draws off-screen); its output goes straight to the host's pipe.
Afterwards every open matplotlib figure is saved, and the image files in ``/work`` are
sent to the host on the fd named in argv[1] as JSON lines. The code runs in this very
process (a second interpreter would double the start-up time): it can break the image
step, but only for itself. Standard library only.
"""

import base64
import json
import os
import sys
import traceback

WORK = "/work"
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 8 * 1024 * 1024


def main() -> int:
    images_fd = int(sys.argv[1])
    code = sys.stdin.read()
    sys.stdin = open(os.devnull)  # the code gets no more input
    sys.argv = ["main.py"]
    sys.path[:0] = ["/sandbox/site", WORK]
    status = 0
    try:
        exec(compile(code, "main.py", "exec"), {"__name__": "__main__"})
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    _save_figures()
    _send_images(images_fd)
    return status


def _save_figures() -> None:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    try:
        for number in plt.get_fignums()[:MAX_IMAGES]:
            plt.figure(number).savefig(os.path.join(WORK, f"figure_{number}.png"))
    except Exception:
        traceback.print_exc()


def _send_images(fd: int) -> None:
    try:
        names = sorted(os.listdir(WORK))
    except OSError:
        return
    sent = 0
    with os.fdopen(fd, "w", encoding="ascii") as channel:
        for name in names:
            if sent >= MAX_IMAGES or not name.lower().endswith((".png", ".jpg", ".jpeg")):
                continue
            path = os.path.join(WORK, name)
            try:
                if os.path.islink(path) or os.path.getsize(path) > MAX_IMAGE_BYTES:
                    continue
                with open(path, "rb") as image:
                    data = image.read(MAX_IMAGE_BYTES + 1)
            except OSError:
                continue
            channel.write(json.dumps({"name": name, "data": base64.b64encode(data).decode()}))
            channel.write("\n")
            sent += 1


if __name__ == "__main__":
    sys.exit(main())
