"""Thin Dagster assets: `valuation/` (the pipeline's groups) and `reports/` (the criteria), plus what they share:
automation (batch partitions, automation conditions), metadata, galleries. Each asset calls the Dagster-free
packages (method, sources, evaluation, demo)."""

from .reports import REPORT_ASSETS
from .valuation import VALUATION_ASSETS, valuation_checks

ALL_ASSETS = VALUATION_ASSETS + REPORT_ASSETS
__all__ = ["ALL_ASSETS", "valuation_checks"]
