"""Value every batch in one process: what `gmv run` and the tests do, and what the sensors do over time in
`dagster dev`."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository

from .assets.automation import generated_batches
from .definitions import build_definitions, definitions_from_environment
from .jobs import PER_BATCH, REPORTS
from .sources.batches import batch_order

# What workers of a distributed executor (celery, k8s) load: the definitions their environment describes.
CODE_POINTER = ("gmv_dagster.definitions", "definitions_from_environment")
# The code location's name in workspace.yaml, pyproject.toml's [tool.dagster] and [tool.dg.project] (a test keeps
# them equal), and the name Dagster gives the repository that a Definitions object makes.
CODE_LOCATION, REPOSITORY = "gmv_dagster", "__repository__"
LAUNCHED_BY = "gmv/launched_by"  # a run's tag: which command launched it (the UI lists tags under the run)


def batch_keys(image_sources) -> list[str]:
    """The batches to value: the configured source's, then each complete inbox folder (name order)."""
    return batch_order(image_sources.source_batch, image_sources.inbox_path())


def _run_config_for(job: dg.JobDefinition, run_config: dict, selection: list[dg.AssetKey] | None) -> dict:
    """The run config restricted to the ops this run executes (one config file serves every job)."""
    nodes = {k.to_user_string() for k in selection} if selection else {node.name for node in job.graph.nodes}
    ops = {name: cfg for name, cfg in (run_config.get("ops") or {}).items() if name in nodes}
    return {**run_config, "ops": ops} if ops else {k: v for k, v in run_config.items() if k != "ops"}


Step = tuple[str, "str | None", "list[dg.AssetKey] | None"]  # job, partition, assets (None: all the job's)


def _job_origin(job_name: str):
    """The code location's job as a run's origin: the UI files such a run under the location's job (timeline,
    re-execution, launched-by) as if the webserver had launched it. The location is named, not loaded: it is
    the one `dagster dev` (workspace.yaml) and `dg dev` (pyproject.toml) serve as CODE_LOCATION."""
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

    return RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(CODE_LOCATION), REPOSITORY), job_name)


def _execute(job, job_def: dg.JobDefinition, instance: dg.DagsterInstance, run_config: dict, step: Step):
    """Create the run of the code location's own job definition (its snapshot: the UI sees the same version) with
    the location as origin, then execute it from this process with the job's executor."""
    from dagster._core.execution.api import execute_run
    from dagster._core.execution.execute_in_process import merge_run_tags

    name, key, selection = step
    tags = merge_run_tags(job_def, key, {LAUNCHED_BY: "gmv run"}, selection, instance, run_config)
    run = instance.create_run_for_job(
        job_def=job_def,
        run_config=run_config,
        tags=tags,
        asset_selection=frozenset(selection) if selection else None,
        remote_job_origin=_job_origin(name),
        job_code_origin=job.get_python_origin() if isinstance(job, ReconstructableJob) else None,
    )
    return execute_run(job, run, instance, raise_on_error=False)


def _in_process(defs: dg.Definitions, instance: dg.DagsterInstance, run_config: dict, step: Step):
    """Every step in this process: Dagster's default executor told so in the run config (not a job of its own,
    whose snapshot the UI would call another version); a configured executor (GMV_EXECUTOR) as it is."""
    from dagster._core.definitions.job_base import InMemoryJob

    job_def = defs.resolve_job_def(step[0])
    config = _run_config_for(job_def, run_config, step[2])
    if job_def.executor_def is dg.multi_or_in_process_executor and "execution" not in config:
        config = {**config, "execution": {"config": {"in_process": {}}}}
    return _execute(InMemoryJob(job_def), job_def, instance, config, step)


@dataclass(frozen=True)
class RunOutcome:
    success: bool
    run_id: str


def _distributed(defs: dg.Definitions, instance: dg.DagsterInstance, run_config: dict, step: Step) -> RunOutcome:
    """One run whose steps the configured executor sends to its workers; this process only coordinates."""
    name, _, selection = step
    recon = ReconstructableRepository.for_module(*CODE_POINTER, working_directory=os.getcwd()).get_reconstructable_job(
        name
    )
    job_def = defs.resolve_job_def(name)
    result = _execute(recon, job_def, instance, _run_config_for(job_def, run_config, selection), step)
    return RunOutcome(result.success, result.run_id)


def _distributed_in_child(run_config: dict, step: Step) -> RunOutcome:
    """_distributed in a process of its own (runs cannot be coordinated from two threads of one process)."""
    return _distributed(definitions_from_environment(), dg.DagsterInstance.get(), run_config, step)


def run_valuation(
    home: str | Path,
    instance: dg.DagsterInstance,
    run_config: dict | None = None,
    env: Mapping[str, str] | None = None,
    with_reports: bool = False,
    defs: dg.Definitions | None = None,
    batches: list[str] | None = None,
):
    """Add every known batch as a partition, run the whole valuation for the first, each further batch's own
    assets, then the sum over all batches (and the criteria reports): the result of the last run, or of the
    first that failed.

    With training shards (GMV_TRAIN_SHARDS > 1) the training side runs first, one run per shard; under a
    distributed executor (GMV_EXECUTOR=celery or k8s) the shard runs go at once, each step on a worker.
    `batches`: value only those, as the inbox sensor does (their own assets, then the sum over every stored
    batch), against the training side as last materialised.
    """
    env = dict(os.environ if env is None else env)
    distributed = env.get("GMV_EXECUTOR") in ("celery", "k8s")
    if distributed and not instance.is_persistent:
        raise ValueError(
            "a distributed executor needs a persistent Dagster instance (DAGSTER_HOME) shared with its workers"
        )
    # Workers rebuild the definitions from their environment (CODE_POINTER); so do this process's children.
    with _environment({**env, "GMV_HOME": str(home)}) if distributed else contextlib.nullcontext():
        return _run_stages(
            defs or build_definitions(home, env), instance, run_config or {}, distributed, batches, with_reports
        )


@contextlib.contextmanager
def _environment(values: Mapping[str, str]):
    """os.environ with `values` set for the duration, then as it was: a run must not leak its settings into the
    caller's later work (a later `dagster dev` started from this process would load a dead broker's executor)."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run_stages(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    run_config: dict,
    distributed: bool,
    batches: list[str] | None,
    with_reports: bool,
):
    execute = _distributed if distributed else _in_process
    keys = batch_keys(defs.resources["image_sources"])
    unknown = [b for b in batches or [] if b not in keys]
    if unknown:
        raise ValueError(
            f"no batch {unknown[0]!r}: the batches are {', '.join(keys)} (the configured source's, "
            "then each inbox folder with a _COMPLETE marker)"
        )
    known = set(instance.get_dynamic_partitions(generated_batches.name))
    instance.add_dynamic_partitions(generated_batches.name, [k for k in keys if k not in known])
    stages: list[list[Step]]  # the steps of a stage may run at once
    if batches:
        stages = _batches_then_sum(defs, batches)
    else:
        stages, first = [], ("valuation", keys[0], None)
        shards = _shard_keys(defs)
        if shards:  # the sources, then every shard, then the rest of the valuation
            stages = [[("refresh_sources", None, None)], [("train_shard", s, None) for s in shards]]
            done = _assets_of(defs, "refresh_sources")
            first = ("valuation", keys[0], sorted(_assets_of(defs, "valuation") - done))
        stages += [[first]] + _batches_then_sum(defs, keys[1:])
    if with_reports:
        stages.append([("criteria", keys[0], sorted(REPORTS.resolve(defs.resolve_asset_graph())))])
    for stage in stages:
        for name, key, selection in stage:
            what = ", ".join(k.to_user_string() for k in selection) if selection else "all its assets"
            print(f"gmv: job {name}, {'partition ' + key if key else 'unpartitioned'}: {what}", file=sys.stderr)
        if distributed and len(stage) > 1:
            with ProcessPoolExecutor(len(stage), mp_context=multiprocessing.get_context("spawn")) as pool:
                results = list(pool.map(_distributed_in_child, [run_config] * len(stage), stage))
        else:
            results = []
            for step in stage:
                results.append(execute(defs, instance, run_config, step))
                if not results[-1].success:
                    break
        failed = [r for r in results if not r.success]
        if failed:
            return failed[0]
    return results[-1]


def _batches_then_sum(defs: dg.Definitions, batches: list[str]) -> list[list[Step]]:
    """Each batch's own assets, one run each, the last batch's run summing every batch too (one run fewer to
    launch: a run covers one partition and the unpartitioned assets below it)."""
    if not batches:
        return []
    last = sorted(PER_BATCH.resolve(defs.resolve_asset_graph()) | {dg.AssetKey("training_values")})
    return [[("value_batch", key, None)] for key in batches[:-1]] + [[("valuation", batches[-1], last)]]


def _assets_of(defs: dg.Definitions, job: str) -> set[dg.AssetKey]:
    return set(defs.resolve_job_def(job).asset_layer.executable_asset_keys)


def _shard_keys(defs: dg.Definitions) -> list[str]:
    """The training shards' partition keys, or [] when the training side is not sharded."""
    partitions = defs.resolve_assets_def("train_embeddings").partitions_def
    return partitions.get_partition_keys() if partitions is not None else []
