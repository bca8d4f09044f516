"""Incremental revaluation on the demo: the cost of one new batch against valuing everything again.

    .venv/bin/python bench/incremental_batch.py [--batch-size 1000] [--work /tmp/gmv_incremental]

1. values the demo (20,000 training, 1,000 generated images) in a fresh GMV_HOME;
2. drops a new batch (Fashion-MNIST test images standing in for new generations) into the inbox and
   values only that batch, then the sum (`gmv run --batch`), as the inbox sensor's run and the automation do;
3. values both batches from scratch in a second fresh GMV_HOME and compares the values bit for bit.
Prints the seconds of each step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np

from gmv_dagster.runner import run_valuation
from gmv_dagster.sources.batches import write_inbox_batch
from gmv_dagster.sources.fashion_mnist import DEBIAN_FASHION_MNIST
from gmv_dagster.sources.images import read_idx


def values(home: Path):
    with duckdb.connect(str(home / "gmv.duckdb"), read_only=True) as con:
        return con.execute("SELECT * FROM training_values").pl()


def timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    if not result.success:
        sys.exit(f"{label} failed")
    print(f"{label:<58} {seconds:7.1f} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--work", default="/tmp/gmv_incremental")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    inbox = work / "inbox"
    env = {**os.environ, "GMV_INBOX": str(inbox)}

    incremental, fresh = work / "incremental", work / "fresh"
    instance = dg.DagsterInstance.ephemeral()
    timed("1. demo valued in a fresh home (1 batch)", lambda: run_valuation(incremental, instance, env=env))

    images = read_idx(DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz")[: args.batch_size]
    write_inbox_batch(inbox, "new-batch", images)
    timed(
        f"2. one new batch of {len(images)} images, then the sum",
        lambda: run_valuation(incremental, instance, env=env, batches=["new-batch"]),
    )
    timed(
        "3. both batches from scratch in another fresh home",
        lambda: run_valuation(fresh, dg.DagsterInstance.ephemeral(), env=env),
    )
    a, b = values(incremental), values(fresh)
    print(
        f"values equal bit for bit: {a.equals(b)}; max |difference| "
        f"{np.abs(a.sort('train_id')['value'].to_numpy() - b.sort('train_id')['value'].to_numpy()).max():.3g}; "
        f"generated images summed: {len(images) + 1000}"
    )


if __name__ == "__main__":
    main()
