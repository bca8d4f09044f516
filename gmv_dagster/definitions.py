"""The Dagster code location: assets, checks, jobs, sensors, schedules and resources wired together."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from .assets import ALL_ASSETS, valuation_checks
from .assets.automation import with_train_shards
from .executors import executor_from_env
from .jobs import build_jobs
from .resources import build_resources
from .sensors import (
    build_automation_sensor,
    build_inbox_sensor,
    build_revaluation_schedule,
)

DEFAULT_CRON = "0 3 * * *"


def build_definitions(
    home: str | Path | None = None, env: Mapping[str, str] | None = None, **resource_overrides
) -> dg.Definitions:
    """GMV_SENSOR_INTERVAL (seconds, default 30) paces the inbox and automation sensors; GMV_REVALUATION_CRON
    (default nightly at 03:00) schedules the rescan of the training images; GMV_TRAIN_SHARDS (default 1) splits
    the training side into that many static partitions; GMV_EXECUTOR picks the executor (executors.py)."""
    env = os.environ if env is None else env
    interval = int(env.get("GMV_SENSOR_INTERVAL", "30"))
    shards = train_shards_from_env(env)
    resources = build_resources(home, env, **resource_overrides)
    return dg.Definitions(
        assets=with_train_shards(ALL_ASSETS, shards),
        asset_checks=valuation_checks(shards),
        jobs=build_jobs(sharded=shards > 1),
        executor=executor_from_env(env),
        sensors=[
            build_inbox_sensor(interval, resources["image_sources"].inbox_path()),
            build_automation_sensor(interval),
        ],
        schedules=[build_revaluation_schedule(env.get("GMV_REVALUATION_CRON", DEFAULT_CRON))],
        resources=resources,
    )


def train_shards_from_env(env: Mapping[str, str]) -> int:
    value = env.get("GMV_TRAIN_SHARDS", "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"GMV_TRAIN_SHARDS must be a whole number >= 1, got {value!r}")
    return int(value)


def definitions_from_environment() -> dg.Definitions:
    """What a worker of a distributed executor loads (runner.CODE_POINTER): the definitions its environment gives."""
    return build_definitions()


defs = build_definitions()
