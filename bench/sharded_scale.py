"""The training side in shards on two Celery workers at scale, and its values against the unsharded run.

    .venv/bin/python bench/sharded_scale.py --work /tmp/gmv_scale/1000000 [--shards 2] [--workers 2] [--subset 20000]

`--work` is a folder `bench/pipeline_scale.py` left (train.npz, generated.npz and home/, the unsharded run). This
script starts Redis and `--workers` dagster-celery workers on this machine (gmv_dagster.executors.local_celery_cluster,
one task at a time each), then runs `gmv run`'s stages with GMV_TRAIN_SHARDS=`--shards` and GMV_EXECUTOR=celery in a
fresh home: the sources, then every shard's embeddings and index at once (one run per shard, each step a Celery task),
then the rest of the valuation. The similarity's weights file is copied from the unsharded home first (the file
`similarity_model` would train: same training images and config, same name), so the comparison is of sharding alone
and the wall time leaves out its fixed ~85 s of training. Memory is sampled every 0.5 s over every process involved
(this one, its children, the workers), summed: PSS (what the machine must hold: shared pages shared out) and RSS.

Two checks against the unsharded run:
1. At the full size, with HNSW (each shard's own graph, candidates merged exactly): per generated image of the
   configured batch, whether its top-k list (train ids in rank order) equals the unsharded one, and the batch's
   values (credits summed per training image) compared: max |difference| and the share of the batch's total value
   that moves. Not expected to be equal: two graphs over halves find some other candidates than one graph over all.
2. On a subset (`--subset` first training images, the `pixels` embedder, exact search), where sharding must change
   nothing: the unsharded run in this process and the sharded run on the workers, training values and matches
   compared for exact equality (the script fails if they differ).

Last line: `n=<n> shards=<s> seconds=<wall> peak_pss_gb=<g> same_topk=<share> subset_equal=<bool>`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import psutil

from gmv_dagster.executors import local_celery_cluster
from gmv_dagster.runner import run_valuation
from gmv_dagster.sources.batches import source_batch_key
from gmv_dagster.sources.images import load_npz

TELEMETRY_OFF = "telemetry:\n  enabled: false\n"


class TreeMemorySampler(threading.Thread):
    """Every `every` seconds, the memory of this process, its children and the given process groups' trees, summed:
    RSS (counts pages that processes share, such as libraries and a memory-mapped source, once per process) and PSS
    (shares them out: what the machine holds)."""

    def __init__(self, roots: list[int], every: float = 0.5):
        super().__init__(daemon=True)
        self.roots, self.every, self.peak_rss, self.peak_pss, self.stopped = roots, every, 0, 0, threading.Event()

    def _totals(self) -> tuple[int, int]:
        seen, rss, pss = set(), 0, 0
        for root in [os.getpid(), *self.roots]:
            try:
                proc = psutil.Process(root)
                for p in [proc, *proc.children(recursive=True)]:
                    if p.pid not in seen:
                        seen.add(p.pid)
                        info = p.memory_full_info()
                        rss, pss = rss + info.rss, pss + info.pss
            except psutil.Error:
                continue
        return rss, pss

    def run(self) -> None:
        while not self.stopped.is_set():
            rss, pss = self._totals()
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            time.sleep(self.every)


def step_seconds(instance: dg.DagsterInstance) -> dict[str, float]:
    """'<partition> <step>' -> seconds, over every run of the instance (a shard's steps under its shard key)."""
    out: dict[str, float] = {}
    for run in instance.get_runs():
        partition = run.tags.get("dagster/partition", "")
        starts: dict[str, float] = {}
        for entry in instance.all_logs(run.run_id):
            if entry.dagster_event is None or entry.step_key is None:
                continue
            kind = entry.dagster_event.event_type
            if kind == dg.DagsterEventType.STEP_START:
                starts[entry.step_key] = entry.timestamp
            elif kind == dg.DagsterEventType.STEP_SUCCESS and entry.step_key in starts:
                out[f"{partition} {entry.step_key}".strip()] = entry.timestamp - starts[entry.step_key]
    return out


def query(home: Path, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(home / "gmv.duckdb"), read_only=True)
    try:
        return con.execute(sql).pl()
    finally:
        con.close()


def batch_tables(home: Path, batch: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The batch's matches (gen_id, train_ids in rank order) and its values (train_id, value: its credits summed)."""
    matches = query(home, f"SELECT gen_id, train_id, rank FROM matches WHERE batch = '{batch}'")
    lists = matches.sort("gen_id", "rank").group_by("gen_id", maintain_order=True).agg(pl.col("train_id"))
    values = query(
        home, f"SELECT train_id, sum(credit) AS value FROM credits WHERE batch = '{batch}' GROUP BY train_id"
    )
    return lists, values


def sharded_run(
    folder: Path, env: dict, shards: int, workers: int, run_config: dict | None = None
) -> tuple[float, tuple[float, float], dict[str, float]]:
    """(wall seconds, (peak summed RSS GB, peak summed PSS GB), step seconds) of the valuation with the training side
    in `shards` shards on `workers` local Celery workers, in `folder` (fresh)."""
    dagster_home = folder / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(TELEMETRY_OFF)
    env = {
        **env,
        "DAGSTER_HOME": str(dagster_home),
        "GMV_HOME": str(folder / "home"),
        "GMV_TRAIN_SHARDS": str(shards),
        "GMV_INBOX": str(folder / "inbox"),
    }
    with local_celery_cluster(folder / "cluster", env, workers) as cluster:
        previous = os.environ.get("DAGSTER_HOME")
        os.environ["DAGSTER_HOME"] = str(dagster_home)
        try:
            instance = dg.DagsterInstance.get()
            sampler = TreeMemorySampler(cluster.pids)
            sampler.start()
            start = time.perf_counter()
            result = run_valuation(folder / "home", instance, run_config, env=cluster.env)
            wall = time.perf_counter() - start
            sampler.stopped.set()
            sampler.join()
            if not result.success:
                raise SystemExit(f"the sharded run in {folder} failed: see {cluster.worker_logs}")
            steps = step_seconds(instance)
        finally:
            if previous is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = previous
    return wall, (sampler.peak_rss / 1e9, sampler.peak_pss / 1e9), steps


def full_size(work: Path, shards: int, workers: int) -> tuple[int, float, float, float]:
    folder = work / f"sharded-{shards}"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(work / "home" / "similarity", folder / "home" / "similarity")
    env = {
        **os.environ,
        "GMV_TRAIN_SOURCE": str(work / "train.npz"),
        "GMV_GENERATED_SOURCE": str(work / "generated.npz"),
    }
    wall, peak, steps = sharded_run(folder, env, shards, workers)
    n = query(folder / "home", "SELECT count(*) AS n FROM train_embeddings")["n"][0]
    print(
        f"\n# n = {n:,}, {shards} shards on {workers} Celery workers: {wall:.1f} s wall, peak memory of every "
        f"process summed: PSS {peak[1]:.2f} GB (RSS {peak[0]:.2f} GB)\n\n| step (partition) | seconds |\n|---|---|"
    )
    for key, seconds in sorted(steps.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.5:
            print(f"| {key} | {seconds:.1f} |")
    batch = source_batch_key(str(work / "generated.npz"))
    (lists_a, values_a), (lists_b, values_b) = batch_tables(work / "home", batch), batch_tables(folder / "home", batch)
    both = lists_a.join(lists_b, on="gen_id", suffix="_sharded")
    same = float(np.mean([a == b for a, b in zip(both["train_id"].to_list(), both["train_id_sharded"].to_list())]))
    top1 = float(
        np.mean([a[0] == b[0] for a, b in zip(both["train_id"].to_list(), both["train_id_sharded"].to_list())])
    )
    values = values_a.join(values_b, on="train_id", how="full", coalesce=True, suffix="_sharded").fill_null(0.0)
    diff = (values["value"] - values["value_sharded"]).abs()
    moved = float(diff.sum() / 2 / values["value"].sum())
    print(
        f"\n# against the unsharded run (batch {batch}, {both.height:,} generated images, HNSW)\n\n"
        f"| same top-k list | same top-1 | max abs value difference | share of the batch's value that moves |\n"
        f"|---|---|---|---|\n| {same:.4f} | {top1:.4f} | {diff.max():.3g} | {moved:.4f} |"
    )
    return n, wall, peak, same


def subset_check(work: Path, n: int, shards: int, workers: int) -> bool:
    folder = work / f"subset-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    images, labels = load_npz(str(work / "train.npz"))
    np.savez(folder / "train.npz", images=images[:n], labels=labels[:n])
    env = {
        **os.environ,
        "GMV_TRAIN_SOURCE": str(folder / "train.npz"),
        "GMV_GENERATED_SOURCE": str(work / "generated.npz"),
        "GMV_BACKBONE": "pixels",
        "GMV_INBOX": str(folder / "inbox"),
    }
    exact = {"resources": {"method": {"config": {"index_mode": "exact"}}}}
    start = time.perf_counter()
    plain = run_valuation(
        folder / "unsharded", dg.DagsterInstance.ephemeral(), exact, env={**env, "GMV_EXECUTOR": "in_process"}
    )
    if not plain.success:
        raise SystemExit("the unsharded subset run failed")
    unsharded_s = time.perf_counter() - start
    wall, _, _ = sharded_run(folder / "sharded", env, shards, workers, exact)
    equal = True
    for table, order in (("training_values", "train_id"), ("matches", "batch, gen_id, rank")):
        a = query(folder / "unsharded", f"SELECT * FROM {table} ORDER BY {order}")
        b = query(folder / "sharded" / "home", f"SELECT * FROM {table} ORDER BY {order}")
        same = a.equals(b)
        equal &= same
        print(f"| {table} | {a.height:,} rows | {'equal' if same else 'DIFFERENT'} |")
    print(
        f"subset of {n:,} (pixels, exact search): unsharded in-process {unsharded_s:.1f} s, {shards} shards on "
        f"{workers} workers {wall:.1f} s; values and matches {'equal' if equal else 'NOT equal'}"
    )
    return equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="a folder bench/pipeline_scale.py left (WORK/<n>)")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--subset", type=int, default=20000, help="training images of the exact-equality check (0: skip)"
    )
    parser.add_argument("--skip-full", action="store_true", help="only the subset check")
    args = parser.parse_args()
    subset_equal = subset_check(args.work, args.subset, args.shards, args.workers) if args.subset else None
    if args.skip_full:
        print(f"subset_equal={subset_equal}")
        if subset_equal is False:
            raise SystemExit(1)
        return
    n, wall, peak, same = full_size(args.work, args.shards, args.workers)
    print(
        f"n={n} shards={args.shards} seconds={wall:.1f} peak_pss_gb={peak[1]:.2f} same_topk={same:.4f} "
        f"subset_equal={subset_equal}"
    )
    if subset_equal is False:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
