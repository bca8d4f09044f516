"""The Dagster code location: assets, checks, jobs and resources wired together."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from .assets import ALL_ASSETS, ALL_CHECKS
from .resources import build_resources

valuation_job = dg.define_asset_job("valuation", selection=dg.AssetSelection.all(), description="The whole valuation")


def build_definitions(home: str | Path | None = None, **resource_overrides) -> dg.Definitions:
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[valuation_job],
        resources=build_resources(home, **resource_overrides),
    )


defs = build_definitions()
