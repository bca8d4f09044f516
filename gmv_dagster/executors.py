"""Where a run's steps execute, chosen by GMV_EXECUTOR (the code is the same everywhere):

- unset: Dagster's default (each step in its own process, for runs the UI or the daemon launches);
- `in_process`: every step in the run's process;
- `celery`: steps are Celery tasks on any worker listening to the broker GMV_CELERY_BROKER (results on
  GMV_CELERY_BACKEND, default the broker); workers run `dagster-celery worker start` with the same
  environment (GMV_HOME, sources, GMV_TRAIN_SHARDS) and DAGSTER_HOME as the run (docs/DEPLOYMENT.md);
- `k8s`: each step is a Kubernetes Job (dagster-k8s); the GPU_TAGS on the torch assets request a GPU.
"""

from __future__ import annotations

from typing import Mapping

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
            {"broker": broker, "backend": env.get("GMV_CELERY_BACKEND", broker)}, name="celery")
    from dagster_k8s import k8s_job_executor  # the `cluster` extra

    return k8s_job_executor
