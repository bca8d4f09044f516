"""The Dagster code location: assets, checks, jobs and resources wired together."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from .assets import ALL_ASSETS, ALL_CHECKS
from .resources import build_resources

REPORTS = dg.AssetSelection.groups("reports")
valuation_job = dg.define_asset_job(
    "valuation", selection=dg.AssetSelection.all() - REPORTS, description="The whole valuation: values of every training image"
)
criteria_job = dg.define_asset_job(
    "criteria", selection=dg.AssetSelection.all(),
    description="The valuation, then every criterion for the method and its baselines (criterion_report)",
)


def build_definitions(home: str | Path | None = None, **resource_overrides) -> dg.Definitions:
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[valuation_job, criteria_job],
        resources=build_resources(home, **resource_overrides),
    )


defs = build_definitions()
