"""The Dagster code location: assets, checks, jobs, sensors, schedules and resources wired together."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import dagster as dg

from .assets import ALL_ASSETS, ALL_CHECKS
from .jobs import ALL_JOBS
from .resources import build_resources
from .sensors import build_automation_sensor, build_inbox_sensor, build_revaluation_schedule

DEFAULT_CRON = "0 3 * * *"


def build_definitions(home: str | Path | None = None, env: Mapping[str, str] | None = None,
                      **resource_overrides) -> dg.Definitions:
    """GMV_SENSOR_INTERVAL (seconds, default 30) paces the inbox and automation sensors; GMV_REVALUATION_CRON
    (default nightly at 03:00) schedules the rescan of the training images."""
    env = os.environ if env is None else env
    interval = int(env.get("GMV_SENSOR_INTERVAL", "30"))
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=ALL_JOBS,
        sensors=[build_inbox_sensor(interval), build_automation_sensor(interval)],
        schedules=[build_revaluation_schedule(env.get("GMV_REVALUATION_CRON", DEFAULT_CRON))],
        resources=build_resources(home, env, **resource_overrides),
    )


defs = build_definitions()
