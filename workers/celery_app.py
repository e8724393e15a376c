"""The Celery host of the diffusion worker (scale-out): the app factory and the task.

Both sides import this module: the bot builds the same app with ``make_celery`` to send
tasks (``workers.celery_backend``), a GPU machine runs ``run_worker`` (``atelier worker
--celery``). One task, ``atelier.generate``, takes a list of request dicts with equal
``batch_key`` and runs them as one pipeline call. Redis is a trust boundary: the worker
re-validates every request against its OWN ``[imagine]`` limits (``workers.wire.admit``)
and fails a bad one alone, with the reason, before the pipeline sees it.

Besides the Celery messages, the two sides share a few Redis keys on the result-backend
Redis (``workers.wire.Keys``), all under a namespace (default ``atelier``, which is also the queue):

* ``{ns}:job:{id}`` — pub/sub channel: ``started``, ``step``, ``done`` events (JSON);
* ``{ns}:cancel:{id}`` — "nobody waits for this job any more" (cancelled, timed out or
  already delivered); the worker checks it between steps and before starting;
* ``{ns}:result:{id}`` — a hash with ``meta`` (JSON) and ``png:N`` (raw PNG bytes), with a
  TTL. Images go here rather than base64 into the Celery result: binary-safe, a third
  smaller, not re-broadcast by the result backend's own pub/sub, and an unclaimed result
  (the bot died) expires on its own. The Celery result keeps a small per-job summary.

Delivery guarantee: ``task_acks_late`` + the Redis transport's ack emulation keep a taken
message in ``unacked`` until the task returns; when a worker dies (``kill -9``, power
loss) another worker's sweep puts it back on the queue once it is older than
``visibility_timeout``. So ``visibility_timeout_s`` must exceed the longest job, or a
live worker's job is handed out twice.

This module must never import torch or diffusers at import time (the bot imports it);
they load inside the worker process only, through ``workers.engine``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import Celery

from workers.api import GeneratedImage, ImageRequest
from workers.config import ImagineSettings
from workers.validate import RequestRejected
from workers.wire import DEFAULT_NAMESPACE, Keys, admit

if TYPE_CHECKING:
    import redis

    from workers.engine import DiffusionEngine

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_NAMESPACE", "TASK_NAME", "Keys", "make_celery", "run_worker", "state_url"]

TASK_NAME = "atelier.generate"
RESULT_TTL_S = 3600
"""How long an unclaimed result (PNG bytes) stays in Redis."""

_ENGINE: DiffusionEngine | None = None
_MODEL_PATH: str = ""
_STATE_CLIENTS: dict[str, redis.Redis] = {}


def state_url(settings: ImagineSettings) -> str:
    """The Redis URL for progress, cancel flags and images: the result backend's Redis."""
    for url in (settings.result_backend, settings.broker_url):
        if url.startswith(("redis://", "rediss://", "unix://")):
            return url
    raise ValueError("imagine.result_backend (or broker_url) must be a redis:// URL")


def make_celery(settings: ImagineSettings, *, namespace: str = DEFAULT_NAMESPACE) -> Celery:
    """The Celery app for ``settings``, with the ``atelier.generate`` task registered.

    ``namespace`` names the queue and prefixes the shared Redis keys, so several
    deployments (or tests) can share one Redis.
    """
    if settings.visibility_timeout_s <= settings.job_timeout_s:
        log.warning(
            "imagine.visibility_timeout_s (%s) <= job_timeout_s (%s): a long job may be "
            "redelivered while it still runs",
            settings.visibility_timeout_s,
            settings.job_timeout_s,
        )
    app = Celery("atelier", broker=settings.broker_url, backend=settings.result_backend)
    app.conf.update(_celery_conf(settings, namespace))
    keys = Keys(namespace)

    @app.task(name=TASK_NAME, bind=True)
    def generate(task: Any, requests: Any) -> dict[str, str]:
        worker = str(task.request.hostname or socket.gethostname())
        return run_task(settings, keys, requests, worker=worker)

    return app


def _celery_conf(settings: ImagineSettings, namespace: str) -> dict[str, Any]:
    vt = settings.visibility_timeout_s
    quick_retry = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": namespace,
        "result_expires": RESULT_TTL_S,
        "broker_connection_retry_on_startup": True,
        # A lost connection means the message is redelivered anyway (late ack).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_hijack_root_logger": False,
        # The bot must not hang on a dead broker: give up publishing after ~1 s.
        "task_publish_retry_policy": quick_retry,
        "broker_transport_options": {
            "visibility_timeout": vt,
            # Sweep for abandoned messages often enough that redelivery takes about
            # ``visibility_timeout``, not the transport's default 100 s extra.
            "unacked_restore_interval": max(1, min(10, vt // 5)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 5,
            **quick_retry,
        },
        "result_backend_transport_options": {"socket_connect_timeout": 5},
    }


class BatchRun:
    """One task's batch on the worker: progress events, cancel checks, results."""

    def __init__(
        self, client: redis.Redis, keys: Keys, requests: Sequence[ImageRequest], worker: str
    ) -> None:
        self._client = client
        self._keys = keys
        self._worker = worker
        self.requests = list(requests)
        self.dropped: set[str] = set()
        self.stopped = False
        self._started = time.monotonic()

    def drop_unwanted(self) -> None:
        """Forget jobs nobody waits for (cancelled, or a redelivery of delivered jobs)."""
        self._refresh_dropped()
        self.requests = [r for r in self.requests if r.job_id not in self.dropped]

    def announce(self) -> None:
        """Tell every waiting job that this worker took it."""
        self._publish_all({"type": "started", "worker": self._worker, "batch_size": len(self)})

    def on_step(self, step: int, total: int) -> None:
        """Publish denoising progress (best effort: a Redis hiccup never stops a batch)."""
        elapsed = time.monotonic() - self._started
        eta = elapsed / step * (total - step) if step > 0 else None
        try:
            self._publish_all({"type": "step", "step": step, "total": total, "eta_s": eta})
        except Exception:  # progress is cosmetic; results still get stored
            log.warning("could not publish progress", exc_info=True)

    def should_stop(self) -> bool:
        """True once every job of the batch is unwanted (one MGET per step)."""
        try:
            self._refresh_dropped()
        except Exception:
            log.warning("could not read cancel flags", exc_info=True)
            return False
        self.stopped = all(r.job_id in self.dropped for r in self.requests)
        return self.stopped

    def store(self, images: Sequence[Sequence[GeneratedImage]]) -> dict[str, str]:
        """Store each wanted job's images and tell its waiter; returns the summary."""
        seconds = time.monotonic() - self._started
        summary: dict[str, str] = {}
        for request, pics in zip(self.requests, images, strict=True):
            if request.job_id in self.dropped:
                summary[request.job_id] = "dropped"
                continue
            meta = {"status": "ok", "worker": self._worker, "seconds": seconds}
            meta["images"] = [{"seed": i.seed, "width": i.width, "height": i.height} for i in pics]
            self._store_one(request.job_id, meta, [i.png for i in pics])
            summary[request.job_id] = "ok"
        return summary

    def fail_all(self, message: str, *, cancelled: bool = False) -> dict[str, str]:
        """Store a failure for every job of the batch; returns the summary."""
        status = "cancelled" if cancelled else "failed"
        for request in self.requests:
            self._store_one(request.job_id, {"status": status, "message": message}, [])
        return {r.job_id: status for r in self.requests}

    def __len__(self) -> int:
        return len(self.requests)

    def _refresh_dropped(self) -> None:
        if not self.requests:
            return
        flags = self._client.mget([self._keys.cancel(r.job_id) for r in self.requests])
        self.dropped |= {r.job_id for r, f in zip(self.requests, flags, strict=True) if f}

    def _publish_all(self, event: dict[str, Any]) -> None:
        payload = json.dumps(event)
        pipe = self._client.pipeline(transaction=False)
        for request in self.requests:
            pipe.publish(self._keys.channel(request.job_id), payload)
        pipe.execute()

    def _store_one(self, job_id: str, meta: dict[str, Any], pngs: list[bytes]) -> None:
        store_result(self._client, self._keys, job_id, meta, pngs)


def store_result(
    client: redis.Redis, keys: Keys, job_id: str, meta: dict[str, Any], pngs: list[bytes]
) -> None:
    """Write a job's result hash (with its TTL) and tell its waiter it is there."""
    key = keys.result(job_id)
    mapping: dict[str, bytes | str] = {"meta": json.dumps(meta)}
    mapping.update({f"png:{n}": png for n, png in enumerate(pngs)})
    pipe = client.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
    pipe.expire(key, RESULT_TTL_S)
    pipe.publish(keys.channel(job_id), json.dumps({"type": "done"}))
    pipe.execute()


def run_task(
    settings: ImagineSettings, keys: Keys, payload: object, *, worker: str
) -> dict[str, str]:
    """The task's body: admit the payload against this worker's limits, then run it.

    A refused request fails alone, with the reason, before the pipeline sees anything;
    the admitted ones run in batches of equal ``batch_key``, at most ``max_batch`` each
    (the sender's batching is a hint: the worker's own limit decides).
    """
    admission = admit(settings, payload)
    if admission.unanswerable:
        log.error("ignored %d malformed request(s) without a job id", admission.unanswerable)
    summary: dict[str, str] = {}
    if admission.refused:
        client = _state_client(state_url(settings))
        for job_id, reason in admission.refused.items():
            log.warning("refused job %r: %s", job_id, reason)  # %r: ids come from anyone
            message = f"the image worker refused this request: {reason}"
            store_result(client, keys, job_id, {"status": "failed", "message": message}, [])
            summary[job_id] = "refused"
    for batch in batches(admission.accepted, settings.max_batch):
        summary.update(run_batch(settings, keys, batch, worker=worker))
    return summary


def batches(requests: Sequence[ImageRequest], size: int) -> list[list[ImageRequest]]:
    """``requests`` grouped by ``batch_key`` (first-seen order), ``size`` at most each."""
    groups: dict[tuple[Any, ...], list[ImageRequest]] = {}
    for request in requests:
        groups.setdefault(request.batch_key, []).append(request)
    return [
        group[start : start + size]
        for group in groups.values()
        for start in range(0, len(group), size)
    ]


def run_batch(
    settings: ImagineSettings, keys: Keys, requests: Sequence[ImageRequest], *, worker: str
) -> dict[str, str]:
    """Generate one admitted batch: skip unwanted jobs, run, store, report."""
    batch = BatchRun(_state_client(state_url(settings)), keys, requests, worker)
    batch.drop_unwanted()
    if not batch:
        return {r.job_id: "dropped" for r in requests}
    batch.announce()
    try:
        engine = _engine(settings)
        images = engine.generate(
            batch.requests, on_step=batch.on_step, should_stop=batch.should_stop
        )
    except Exception as exc:
        message, cancelled = _describe_failure(exc, stopped=batch.stopped)
        return batch.fail_all(message, cancelled=cancelled)
    return batch.store(images)


def _describe_failure(exc: Exception, *, stopped: bool) -> tuple[str, bool]:
    """A user-fit message for a failed batch, and whether it was a cancellation."""
    from core.errors import ModelError
    from workers.engine import DeviceOutOfMemory, GenerationCancelled

    if stopped or isinstance(exc, GenerationCancelled):
        return "cancelled", True
    if isinstance(exc, DeviceOutOfMemory):
        return str(exc), False
    if isinstance(exc, RequestRejected):
        log.warning("batch refused by the engine: %s", exc)
        return f"the image worker refused this request: {exc}", False
    log.error("batch failed", exc_info=exc)
    if isinstance(exc, ModelError):
        return "the image model could not be loaded on the worker", False
    return f"image generation failed on the worker ({type(exc).__name__})", False


def _state_client(url: str) -> redis.Redis:
    """One synchronous Redis client per URL and process (the task runs in a solo pool)."""
    if url not in _STATE_CLIENTS:
        import redis

        _STATE_CLIENTS[url] = redis.Redis.from_url(url, socket_connect_timeout=5)
    return _STATE_CLIENTS[url]


def _engine(settings: ImagineSettings) -> DiffusionEngine:
    """The process's engine, loaded on first use (``run_worker`` loads it before jobs)."""
    global _ENGINE
    if _ENGINE is None:
        from workers.engine import DiffusionEngine

        path = _MODEL_PATH or settings.model_path
        if not path:
            raise RuntimeError("no model path: pass model_path to run_worker")
        _ENGINE = DiffusionEngine.load(
            Path(path),
            device=settings.device,
            dtype=settings.dtype,
            torch_compile=settings.torch_compile,
            channels_last=settings.channels_last,
        )
        log.info("engine loaded: %s", _ENGINE.description)
    return _ENGINE


def worker_hostname(device: str) -> str:
    """``atelier-<device>-<pid>@<host>``: unique per process, naming the GPU it owns."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible and device.startswith("cuda"):
        device = f"gpu{visible}"  # the physical GPU, not the process-local cuda:0
    device = "".join(c if c.isalnum() else "_" for c in device)
    return f"atelier-{device}-{os.getpid()}@{socket.gethostname()}"


def run_worker(
    settings: ImagineSettings,
    *,
    model_path: str | Path,
    concurrency: int = 1,
    namespace: str = DEFAULT_NAMESPACE,
    loglevel: str = "INFO",
) -> None:
    """Run Celery worker(s) for ``atelier worker --celery``; returns when they stop.

    One process per GPU, each with a solo pool (one batch at a time, the model loaded
    once). ``concurrency`` N > 1 starts N processes with ``CUDA_VISIBLE_DEVICES=0..N-1``;
    on several machines, or to pick GPUs yourself, start one worker per GPU with
    ``CUDA_VISIBLE_DEVICES=i atelier worker --celery``. The model loads before the worker
    takes its first message, so a worker that answers ping is ready.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if concurrency == 1:
        _run_one(settings, str(model_path), namespace, loglevel)
        return
    _run_many(settings, str(model_path), concurrency, namespace, loglevel)


def _run_one(settings: ImagineSettings, model_path: str, namespace: str, loglevel: str) -> None:
    global _MODEL_PATH
    _MODEL_PATH = model_path
    app = make_celery(settings, namespace=namespace)
    device = _engine(settings).device
    argv = [
        "worker",
        "--pool=solo",
        "--concurrency=1",
        f"--hostname={worker_hostname(device)}",
        f"--queues={namespace}",
        f"--loglevel={loglevel}",
        "--without-gossip",
    ]
    app.worker_main(argv)


def _run_many(
    settings: ImagineSettings, model_path: str, count: int, namespace: str, loglevel: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_gpu_child,
            args=(settings.model_dump(), model_path, gpu, namespace, loglevel),
            name=f"atelier-worker-gpu{gpu}",
        )
        for gpu in range(count)
    ]
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join()
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(30)


def _gpu_child(
    settings: dict[str, Any], model_path: str, gpu: int, namespace: str, loglevel: str
) -> None:
    # Before torch loads in this process, so it sees exactly one GPU.
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    _run_one(ImagineSettings(**settings), model_path, namespace, loglevel)
