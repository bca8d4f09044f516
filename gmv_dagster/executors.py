"""Where a run's steps execute, chosen by GMV_EXECUTOR (the code is the same everywhere):

- unset: Dagster's default (each step in its own process, for runs the UI or the daemon launches);
- `in_process`: every step in the run's process;
- `celery`: steps are Celery tasks on any worker listening to the broker GMV_CELERY_BROKER (results on
  GMV_CELERY_BACKEND, default the broker); workers run `dagster-celery worker start` with the same
  environment (GMV_HOME, sources, GMV_TRAIN_SHARDS) and DAGSTER_HOME as the run (docs/DEPLOYMENT.md);
- `k8s`: each step is a Kubernetes Job (dagster-k8s); the GPU_TAGS on the torch assets request a GPU.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

EXECUTORS = ("in_process", "celery", "k8s")


def executor_from_env(env: Mapping[str, str]) -> dg.ExecutorDefinition | None:
    name = env.get("GMV_EXECUTOR", "")
    if not name:
        return None
    if name not in EXECUTORS:
        raise ValueError(f"GMV_EXECUTOR must be one of {', '.join(EXECUTORS)} (or unset), got {name!r}")
    if name == "in_process":
        return dg.in_process_executor
    if name == "celery":
        broker = env.get("GMV_CELERY_BROKER")
        if not broker:
            raise ValueError("GMV_EXECUTOR=celery needs GMV_CELERY_BROKER, e.g. redis://127.0.0.1:6379/0")
        from dagster_celery import celery_executor  # the `cluster` extra

        return celery_executor.configured(
            {"broker": broker, "backend": env.get("GMV_CELERY_BACKEND", broker)}, name="celery"
        )
    from dagster_k8s import k8s_job_executor  # the `cluster` extra

    return k8s_job_executor


@dataclass(frozen=True)
class LocalCluster:
    env: dict  # the environment runs and workers share (GMV_EXECUTOR=celery, the broker, PATH)
    worker_logs: list[Path]
    pids: list[int]  # redis-server's, then each worker's process group


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to the process group started with setsid, then SIGKILL if it lingers (a group already gone is fine)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def local_celery_cluster(folder: Path, env: Mapping[str, str], workers: int = 2) -> Iterator[LocalCluster]:
    """Redis on a free loopback port and `workers` dagster-celery workers (one task at a time each) on this machine,
    all with `env` (its DAGSTER_HOME, GMV_HOME, sources and GMV_TRAIN_SHARDS: workers and runs must see one
    configuration); logs and redis's files in `folder`. Stopped on exit. For sharded runs on one machine (the
    benchmark, the tests); a real deployment runs its workers as services (docs/DEPLOYMENT.md).

    Workers take a task only when free (`worker_disable_prefetch`): by default a busy worker reserves the next task
    and holds it while another worker idles (measured at 1M: one shard's 4-minute index build waited so).
    The workers share the machine's cores: each gets OMP_NUM_THREADS = cores // workers (unless `env` sets it), as
    two torch processes each using every core run slower together than one (measured: 2.3x slower embedding at 1M).
    """
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise RuntimeError("redis-server is not installed: run scripts/setup.sh (apt-get install redis-server)")
    if not env.get("DAGSTER_HOME"):
        raise ValueError("the workers and the run must share a persistent Dagster instance: set DAGSTER_HOME")
    folder.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    # dagster-celery starts `celery` from PATH: this environment's.
    env = {
        "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers)),
        **env,
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "GMV_EXECUTOR": "celery",
        "GMV_CELERY_BROKER": broker,
        "GMV_CELERY_BACKEND": f"redis://127.0.0.1:{port}/1",
    }
    procs = [
        subprocess.Popen(
            [
                "setsid",
                redis_server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],
            stdout=open(folder / "redis.log", "w"),
            stderr=subprocess.STDOUT,
        )
    ]
    try:
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(
                    f"redis-server did not answer in 30 s:\n{(folder / 'redis.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        config = folder / "celery.yaml"
        config.write_text(
            f"execution:\n  config:\n    broker: {broker}\n    backend: {env['GMV_CELERY_BACKEND']}\n"
            "    config_source:\n      worker_disable_prefetch: true\n"
        )
        # The instance's storage is made once, before the workers would race to make it.
        subprocess.run([str(bin_dir / "dagster"), "instance", "info"], env=env, check=True, capture_output=True)
        logs = [folder / f"worker{i}.log" for i in range(1, workers + 1)]
        for log in logs:  # Celery appends: an old log's "ready." would pass the wait below at once
            log.unlink(missing_ok=True)
        for i, log in enumerate(logs, 1):
            procs.append(
                subprocess.Popen(
                    [
                        "setsid",
                        str(bin_dir / "dagster-celery"),
                        "worker",
                        "start",
                        "-A",
                        "dagster_celery.app",
                        "-n",
                        f"w{i}",
                        "-y",
                        str(config),
                        "--",
                        "--concurrency=1",
                        "--loglevel=INFO",
                        f"--logfile={log}",
                    ],
                    env=env,
                    cwd=folder,
                    stdout=subprocess.DEVNULL,
                    stderr=open(folder / f"worker{i}.err", "w"),
                )
            )
        deadline = time.time() + 120
        while not all(log.is_file() and " ready." in log.read_text() for log in logs):
            if time.time() > deadline or any(proc.poll() is not None for proc in procs):
                raise RuntimeError(
                    "the celery workers did not start (in 120 s):\n"
                    + "\n".join((folder / f"worker{i}.err").read_text()[-2000:] for i in range(1, workers + 1))
                )
            time.sleep(1)
        yield LocalCluster(env, logs, [proc.pid for proc in procs])
    finally:
        for proc in reversed(procs):
            stop_group(proc)
