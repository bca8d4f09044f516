"""Value every batch in one process: what `gmv run` and the tests do, and what the sensors do over time in `dagster dev`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping

import dagster as dg

from .assets.automation import generated_batches
from .definitions import build_definitions
from .jobs import REPORTS
from .valuation.batches import scan_inbox


def batch_keys(image_sources) -> list[str]:
    """The batches to value: the configured source's, then each complete inbox folder (name order)."""
    ready, _ = scan_inbox(image_sources.inbox_path())
    return [image_sources.source_batch] + [k for k in ready if k != image_sources.source_batch]


def _run_config_for(job: dg.JobDefinition, run_config: dict, selection: list[dg.AssetKey] | None) -> dict:
    """The run config restricted to the ops this run executes (one config file serves every job)."""
    nodes = {k.to_user_string() for k in selection} if selection else {node.name for node in job.graph.nodes}
    ops = {name: cfg for name, cfg in (run_config.get("ops") or {}).items() if name in nodes}
    return {**run_config, "ops": ops} if ops else {k: v for k, v in run_config.items() if k != "ops"}


def run_valuation(home: str | Path, instance: dg.DagsterInstance, run_config: dict | None = None,
                  env: Mapping[str, str] | None = None, with_reports: bool = False,
                  defs: dg.Definitions | None = None, batches: list[str] | None = None) -> dg.ExecuteInProcessResult:
    """Add every known batch as a partition, run the whole valuation for the first, each further batch's own
    assets, then the sum over all batches (and the criteria reports): the result of the last run, or of the
    first that failed.

    `batches`: value only those, as the inbox sensor does (their own assets, then the sum over every stored
    batch), against the training side as last materialised.
    """
    defs = defs or build_definitions(home, env)
    run_config = run_config or {}
    keys = batch_keys(defs.resources["image_sources"])
    unknown = [b for b in batches or [] if b not in keys]
    if unknown:
        raise ValueError(f"no batch {unknown[0]!r}: the batches are {', '.join(keys)} (the configured source's, "
                         "then each inbox folder with a _COMPLETE marker)")
    known = set(instance.get_dynamic_partitions(generated_batches.name))
    instance.add_dynamic_partitions(generated_batches.name, [k for k in keys if k not in known])
    total = ("valuation", keys[0], [dg.AssetKey("training_values")])
    steps: list[tuple[str, str, list[dg.AssetKey] | None]]
    if batches:
        steps = [("value_batch", key, None) for key in batches] + [total]
    else:
        steps = [("valuation", keys[0], None)] + [("value_batch", key, None) for key in keys[1:]]
        steps += [total] if len(keys) > 1 else []
    if with_reports:
        steps.append(("criteria", keys[0], sorted(REPORTS.resolve(defs.resolve_asset_graph()))))
    for name, key, selection in steps:
        job = defs.resolve_job_def(name)
        what = ", ".join(k.to_user_string() for k in selection) if selection else "all its assets"
        print(f"gmv: job {name}, batch {key}: {what}", file=sys.stderr)
        result = job.execute_in_process(run_config=_run_config_for(job, run_config, selection), instance=instance,
                                        partition_key=key, asset_selection=selection, raise_on_error=False)
        if not result.success:
            break
    return result
