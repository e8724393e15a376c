"""The local image worker's child process: owns the device and the engine, runs batches.

Started by ``workers.local`` with the multiprocessing *spawn* context. It reads commands
from one queue and writes ``JobUpdate``s (and a few control tuples) to another; it never
talks to the bot any other way, and it never decides about retries (the parent does).

Messages in: ``("submit", ImageRequest)``, ``("cancel", job_id)``, ``("stop",)``.
Messages out: ``("ready", device, description)``, ``("fatal", message)``, ``("update", JobUpdate)``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.api import Failed, Finished, ImageRequest, JobUpdate, Queued, Started, Step

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """What the child needs to know (picklable: no settings objects cross the boundary)."""

    model_path: str
    device: str
    dtype: str
    torch_compile: bool
    channels_last: bool
    max_batch: int
    batch_window_ms: int
    worker_name: str
    build_demo: bool = False  # build the bundled random-weights demo at model_path first
    crash_on_prompt: str | None = None
    corrupt_on_prompt: str | None = None


@dataclass
class _State:
    pending: list[ImageRequest] = field(default_factory=list)
    running: list[ImageRequest] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)
    stopping: bool = False


def main(config: ChildConfig, inbox: Any, outbox: Any) -> None:
    """The child's entry point: load the model, then serve batches until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        from workers.engine import DiffusionEngine

        if config.build_demo:
            from workers.tiny import build_tiny_sd

            build_tiny_sd(Path(config.model_path))
        engine = DiffusionEngine.load(
            config.model_path,
            device=config.device,
            dtype=config.dtype,
            torch_compile=config.torch_compile,
            channels_last=config.channels_last,
        )
    except Exception as exc:
        outbox.put(("fatal", str(exc)))
        return
    outbox.put(("ready", engine.device, engine.description))
    _Worker(config, engine, inbox, outbox).serve()


class _Worker:
    def __init__(self, config: ChildConfig, engine: Any, inbox: Any, outbox: Any) -> None:
        self._config = config
        self._engine = engine
        self._inbox = inbox
        self._outbox = outbox
        self._state = _State()
        self._name = f"{config.worker_name} pid {os.getpid()}"

    def serve(self) -> None:
        state = self._state
        while not state.stopping:
            if not state.pending:
                self._handle(self._inbox.get())
                continue
            self._gather()
            batch = self._take_batch()
            if batch:
                self._run(batch)

    def _send(self, update: JobUpdate) -> None:
        self._outbox.put(("update", update))

    def _handle(self, message: tuple[Any, ...]) -> None:
        state = self._state
        if message[0] == "submit":
            state.pending.append(message[1])
            self._send(Queued(message[1].job_id, len(state.pending) - 1))
        elif message[0] == "cancel":
            self._cancel(message[1])
        elif message[0] == "stop":
            state.stopping = True

    def _cancel(self, job_id: str) -> None:
        state = self._state
        queued = next((r for r in state.pending if r.job_id == job_id), None)
        if queued is not None:
            state.pending.remove(queued)
            self._send(Failed(job_id, "cancelled", cancelled=True))
            self._announce_positions()
        elif any(r.job_id == job_id for r in state.running):
            state.cancelled.add(job_id)

    def _drain(self) -> None:
        while True:
            try:
                self._handle(self._inbox.get_nowait())
            except queue.Empty:
                return

    def _gather(self) -> None:
        """Wait up to the batch window for more jobs compatible with the oldest one."""
        deadline = time.monotonic() + self._config.batch_window_ms / 1000
        while not self._state.stopping and self._state.pending:
            key = self._state.pending[0].batch_key
            if sum(r.batch_key == key for r in self._state.pending) >= self._config.max_batch:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                self._handle(self._inbox.get(timeout=remaining))
            except queue.Empty:
                return

    def _take_batch(self) -> list[ImageRequest]:
        state = self._state
        if not state.pending:
            return []
        key = state.pending[0].batch_key
        batch = [r for r in state.pending if r.batch_key == key][: self._config.max_batch]
        state.pending = [r for r in state.pending if r not in batch]
        return batch

    def _announce_positions(self) -> None:
        for position, request in enumerate(self._state.pending):
            self._send(Queued(request.job_id, position))

    def _run(self, batch: list[ImageRequest]) -> None:
        state = self._state
        state.running, state.cancelled = batch, set()
        for request in batch:
            self._send(Started(request.job_id, self._name, len(batch)))
        self._announce_positions()
        self._maybe_crash(batch)
        started = time.monotonic()
        try:
            results = self._engine.generate(
                batch, on_step=self._progress(batch, started), should_stop=self._should_stop
            )
        except Exception as exc:
            self._fail_batch(batch, exc)
        else:
            self._finish_batch(batch, results, time.monotonic() - started)
        finally:
            state.running = []

    def _progress(self, batch: list[ImageRequest], started: float) -> Any:
        def on_step(done: int, total: int) -> None:
            elapsed = time.monotonic() - started
            eta = elapsed / done * (total - done) if done else None
            for request in batch:
                self._send(Step(request.job_id, done, total, eta))

        return on_step

    def _should_stop(self) -> bool:
        self._drain()
        state = self._state
        return state.stopping or all(r.job_id in state.cancelled for r in state.running)

    def _fail_batch(self, batch: list[ImageRequest], exc: Exception) -> None:
        from workers.engine import DeviceOutOfMemory, GenerationCancelled
        from workers.validate import RequestRejected

        for request in batch:
            if isinstance(exc, GenerationCancelled):
                update = Failed(request.job_id, "cancelled", cancelled=True)
            elif isinstance(exc, DeviceOutOfMemory):
                update = Failed(request.job_id, str(exc))
            elif isinstance(exc, RequestRejected):
                update = Failed(request.job_id, f"the image worker refused this request: {exc}")
            else:
                # The exception's text (paths, devices) goes to the log, not to users.
                log.error("image job %s failed", request.job_id, exc_info=exc)
                update = Failed(request.job_id, f"image generation failed ({type(exc).__name__})")
            self._send(update)

    def _finish_batch(self, batch: list[ImageRequest], results: list[Any], seconds: float) -> None:
        for request, images in zip(batch, results, strict=True):
            if request.job_id in self._state.cancelled:
                self._send(Failed(request.job_id, "cancelled", cancelled=True))
            else:
                images = self._maybe_corrupt(request, images)
                self._send(Finished(request.job_id, tuple(images), self._name, seconds))

    def _maybe_corrupt(self, request: ImageRequest, images: list[Any]) -> list[Any]:
        """Test hook: send back bytes that are no PNG, as a broken driver or host might."""
        magic = self._config.corrupt_on_prompt
        if magic and magic in request.prompt:
            return [dataclasses.replace(image, png=b"not a png") for image in images]
        return images

    def _maybe_crash(self, batch: list[ImageRequest]) -> None:
        """Test hook: die like a segfaulting driver would when a prompt asks for it."""
        magic = self._config.crash_on_prompt
        if magic and any(magic in r.prompt for r in batch):
            time.sleep(0.3)  # let the queue's feeder thread deliver Started first
            os.kill(os.getpid(), signal.SIGKILL)
