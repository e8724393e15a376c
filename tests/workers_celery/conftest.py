"""Fixtures: the real Redis on 127.0.0.1:6379 and a REAL Celery worker subprocess.

Every test here needs that Redis server (``pytest -m celery`` selects them, ``-m "not
celery"`` skips them). The worker runs ``workers.celery_app.run_worker`` on the tiny
random-weights pipeline, with a 5 s visibility timeout so that a message abandoned by a
killed worker comes back fast. Tests use Redis DBs 11 (broker) and 12 (results,
progress) and a namespace (queue and key prefix) unique to the session; teardown deletes
only what that namespace made. ``secured_redis`` is a second, throw-away redis-server
that wants a password. Every subprocess is killed in teardown.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from workers.celery_app import TASK_NAME, make_celery
from workers.celery_backend import CeleryImageBackend
from workers.config import ImagineSettings
from workers.tiny import build_tiny_sd

REPO = Path(__file__).resolve().parents[2]
BROKER_DB, STATE_DB = 11, 12
_ENTRY = (
    "import json, sys\n"
    "from workers.config import ImagineSettings\n"
    "from workers.celery_app import run_worker\n"
    "run_worker(ImagineSettings(**json.loads(sys.argv[1])), model_path=sys.argv[2],"
    " namespace=sys.argv[3], loglevel='INFO')\n"
)


def imagine_settings(**overrides: object) -> ImagineSettings:
    """Settings for these tests: local Redis DBs, 5 s visibility timeout, CPU."""
    values: dict[str, object] = {
        "backend": "celery",
        "device": "cpu",
        "broker_url": f"redis://127.0.0.1:6379/{BROKER_DB}",
        "result_backend": f"redis://127.0.0.1:6379/{STATE_DB}",
        "visibility_timeout_s": 5,
        "job_timeout_s": 60,
        "batch_window_ms": 300,
        "max_batch": 4,
        "max_steps": 1000,  # the cancel tests run long jobs
    }
    values.update(overrides)
    return ImagineSettings.model_validate(values)


class WorkerHost:
    """Starts, kills and restarts one Celery worker subprocess."""

    def __init__(self, settings: ImagineSettings, namespace: str, model: Path, logs: Path):
        self.settings = settings
        self.namespace = namespace
        self._model = model
        self._logs = logs
        self._app = make_celery(settings, namespace=namespace)
        self.proc: subprocess.Popen[bytes] | None = None
        self.hostname = ""
        self.starts = 0

    def ensure(self) -> None:
        """Start a worker unless one is running; return once it answers ping."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        if not self.hostname:
            self.hostname = self._wait_ready(self._running())

    def start(self) -> None:
        """Start a worker process and return at once (a solo worker busy with a job
        answers no ping, so a test that restarts one mid-job must not wait for it)."""
        self.starts += 1
        self.hostname = ""
        log = (self._logs / f"worker-{self.starts}.log").open("wb")
        args = [sys.executable, "-c", _ENTRY, self.settings.model_dump_json()]
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
        self.proc = subprocess.Popen(
            [*args, str(self._model), self.namespace],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def send_raw(self, requests: object) -> str:
        """Put an ``atelier.generate`` task on the queue directly, bypassing the bot
        (and every check it makes), as anyone who can reach Redis could; its task id."""
        task_id = f"{self.namespace}-{uuid.uuid4().hex}"
        self._app.send_task(TASK_NAME, args=[requests], task_id=task_id, queue=self.namespace)
        return task_id

    def log_text(self) -> str:
        """Everything the current worker process has logged so far."""
        return (self._logs / f"worker-{self.starts}.log").read_text(errors="replace")

    def owns(self, hostname: str) -> bool:
        """Whether ``hostname`` is the current worker process's Celery node name."""
        return f"-{self._running().pid}@" in hostname

    def _running(self) -> subprocess.Popen[bytes]:
        assert self.proc is not None, "no worker was started"
        return self.proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], limit_s: float = 60.0) -> str:
        deadline = time.monotonic() + limit_s
        marker = f"-{proc.pid}@"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}; see {self._logs}")
            for reply in self._app.control.ping(timeout=0.5) or []:
                for name in reply:
                    if marker in name:
                        return str(name)
        raise RuntimeError(f"the worker did not answer ping in {limit_s} s; see {self._logs}")

    def kill9(self) -> None:
        """``kill -9`` the worker: no shutdown, no ack, no restore — a crash."""
        self._running().send_signal(signal.SIGKILL)
        self._running().wait(10)
        self.hostname = ""

    def stop(self) -> None:
        """Warm shutdown, then kill if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        """Stop the worker and the test-side Celery client."""
        self.stop()
        self._app.close()


@pytest.fixture(scope="session")
def namespace() -> Iterator[str]:
    """A queue / key prefix unique to this session; its keys are deleted afterwards."""
    ns = f"atelier-test-{uuid.uuid4().hex[:8]}"
    yield ns
    _delete_namespace(ns)


def _delete_namespace(ns: str) -> None:
    broker = redis.Redis(db=BROKER_DB)
    state = redis.Redis(db=STATE_DB)
    try:
        for client, pattern in ((state, f"{ns}*"), (broker, f"{ns}*")):
            for key in client.scan_iter(pattern):
                client.delete(key)
        for pattern in (f"_kombu.binding.{ns}*", f"_kombu.binding_permanent.{ns}*"):
            for key in broker.scan_iter(pattern):
                broker.delete(key)
        for key in state.scan_iter(f"celery-task-meta-{ns}*"):  # task ids name the namespace
            state.delete(key)
    finally:
        broker.close()
        state.close()


def broker_view(namespace: str) -> tuple[int, int]:
    """(messages waiting in the queue, messages taken but not acked) for ``namespace``.

    Kombu's Redis transport emulates acks: a taken message sits in the ``unacked`` hash
    (as JSON ``[message, exchange, routing_key]``) until the worker acks it.
    """
    broker = redis.Redis(db=BROKER_DB)
    try:
        entries = [json.loads(raw) for raw in broker.hvals("unacked")]
        return int(broker.llen(namespace)), sum(1 for e in entries if e[2] == namespace)
    finally:
        broker.close()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random-weights tiny SD pipeline, built once per session."""
    return build_tiny_sd(tmp_path_factory.mktemp("model") / "tiny-sd")


@pytest.fixture(scope="session")
def worker_host(
    namespace: str, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHost]:
    """The session's worker process (restarted by tests that kill it)."""
    host = WorkerHost(imagine_settings(), namespace, tiny_model, tmp_path_factory.mktemp("logs"))
    try:
        yield host
    finally:
        host.close()


@pytest.fixture
def worker(worker_host: WorkerHost) -> WorkerHost:
    """A running, ready worker."""
    worker_host.ensure()
    return worker_host


@pytest.fixture
async def backend(namespace: str) -> AsyncIterator[CeleryImageBackend]:
    """The bot-side back end, talking to the session's queue."""
    backend = CeleryImageBackend(imagine_settings(), namespace=namespace)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()


def job_id(namespace: str) -> str:
    """A job id that names the session (teardown finds its Celery results by it)."""
    return f"{namespace}-{uuid.uuid4().hex[:8]}"


def stored_result(namespace: str, job: str, limit_s: float = 30.0) -> dict[bytes, bytes]:
    """The result hash a worker wrote for ``job`` (waits for it; empty if none came)."""
    state = redis.Redis(db=STATE_DB)
    key = f"{namespace}:result:{job}"
    try:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            stored: dict[bytes, bytes] = state.hgetall(key)  # type: ignore[assignment]
            if b"meta" in stored:
                return stored
            time.sleep(0.1)
        return {}
    finally:
        state.close()


@dataclass(frozen=True)
class SecuredRedis:
    """A redis-server of our own that wants a password."""

    port: int
    password: str

    def url(self, db: int, *, password: str | None = None) -> str:
        """``redis://:PASSWORD@127.0.0.1:PORT/DB`` (another password to test refusals)."""
        secret = self.password if password is None else password
        return f"redis://:{secret}@127.0.0.1:{self.port}/{db}"


@pytest.fixture(scope="module")
def secured_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRedis]:
    """A throw-away ``redis-server --requirepass`` on a free loopback port (no disk)."""
    server = SecuredRedis(_free_port(), secrets.token_hex(16))
    folder = tmp_path_factory.mktemp("secured-redis")
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(server.port)]
    args += ["--requirepass", server.password, "--save", "", "--appendonly", "no"]
    with (folder / "redis.log").open("wb") as log:
        proc = subprocess.Popen([*args, "--dir", str(folder)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_redis(server, proc)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_redis(
    server: SecuredRedis, proc: subprocess.Popen[bytes], limit_s: float = 10
) -> None:
    client = redis.Redis(port=server.port, password=server.password, socket_connect_timeout=1)
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer in {limit_s} s")
    finally:
        client.close()
