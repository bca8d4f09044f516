"""Scaling: valuation time against the training set size n and the number of generated images m.

    .venv/bin/python bench/scaling.py [--n 10000,20000,40000,80000] [--m 250,1000,4000,16000]

The per-image stages are measured on Fashion-MNIST images with the pipeline's defaults: embedding (the
`pixels` backbone, 1,024-d) per image, NIQE quality per generated image, and its calibration (fixed: 1,000
reference images whatever n and m are). The stages whose cost grows with both n and m run the pipeline's
own functions on clustered synthetic 1,024-d vectors: the usearch HNSW build (f16, every core), the search
of K' = 50 candidates with their exact re-score, and the credit sums. Prints seconds per stage and in total
for each n (m = 1,000) and each m (n = 20,000), and the growth exponent of each: b in time ~ size^b, from
the smallest and largest size.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from gmv_dagster.method.credit import compute_credits, training_values
from gmv_dagster.method.embedders import make_embedder
from gmv_dagster.method.matching import (
    IndexShard,
    MatchParams,
    matches_table,
    merge_candidates,
    search_shards,
)
from gmv_dagster.method.quality import calibrate, load_quality_model
from gmv_dagster.method.search import HnswParams, build_hnsw
from gmv_dagster.sources.fashion_mnist import DEBIAN_FASHION_MNIST
from gmv_dagster.sources.images import read_idx

sys.path.insert(0, str(Path(__file__).parent))
from matching import synthetic  # noqa: E402  (bench/ is scripts, not a package)

FIXED_M, FIXED_N = 1000, 20_000


def seconds(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def per_image_rates(work: Path) -> dict[str, float]:
    """Seconds per image for embedding and for NIQE scoring; seconds for the (fixed) calibration."""
    images = list(read_idx(DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz")[:3000])
    embedder = make_embedder("pixels")
    embed_s, _ = seconds(embedder.embed, images[:2000])
    calibrate_s, calibration = seconds(calibrate, "niqe_refit", images[2000:3000], work_dir=work)
    scorer = load_quality_model(calibration)
    score_s, _ = seconds(scorer.score, images[:500])
    return {"embed": embed_s / 2000, "quality": score_s / 500, "calibrate": calibrate_s}


def method_stages(n: int, m: int, dim: int) -> dict[str, float]:
    train, queries = synthetic(n, dim, m, seed=n + m)
    build_s, index = seconds(build_hnsw, train, HnswParams(dtype="f16"), 0)
    params = MatchParams(k=10, candidates=50)
    match_s, (idx, dist) = seconds(search_shards, train, queries, params, [IndexShard(0, n, index)])
    gen_ids = [f"g{i}" for i in range(m)]
    train_ids = pl.Series([f"t{i}" for i in range(n)])
    quality = pl.DataFrame({"gen_id": gen_ids, "q": np.linspace(0.5, 1.0, m)})

    def credit():
        return training_values(
            compute_credits(matches_table(gen_ids, train_ids, idx, dist, params.k), quality, 0.01), train_ids
        )

    credit_s, _ = seconds(credit)
    return {"index build": build_s, "match + re-score": match_s, "credit": credit_s}


def table(axis: str, sizes: list[int], rows: list[dict[str, float]]) -> None:
    stages = list(rows[0])
    print(f"\n| {axis} | " + " | ".join(stages) + " |")
    print("|---|" + "---|" * len(stages))
    for size, row in zip(sizes, rows):
        print(f"| {size:,} | " + " | ".join(f"{row[s]:.2f}" for s in stages) + " |")
    growth = [math.log(max(rows[-1][s], 1e-6) / max(rows[0][s], 1e-6)) / math.log(sizes[-1] / sizes[0]) for s in stages]
    print("| growth b (time ~ size^b) | " + " | ".join(f"{b:.2f}" for b in growth) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default="10000,20000,40000,80000")
    parser.add_argument("--m", default="250,1000,4000,16000")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--work", default="/tmp/gmv_bench_scaling")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"# scaling: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), dim {args.dim}", flush=True
    )
    rate = per_image_rates(work)
    print(
        f"per image: embed {rate['embed'] * 1e3:.3f} ms, NIQE quality {rate['quality'] * 1e3:.2f} ms; "
        f"NIQE calibration {rate['calibrate']:.1f} s (fixed)",
        flush=True,
    )

    def total(n: int, m: int, stages: dict[str, float]) -> dict[str, float]:
        row = {"embed": rate["embed"] * (n + m), "quality": rate["quality"] * m + rate["calibrate"], **stages}
        return {**row, "total": sum(row.values()), "total s / generated image": sum(row.values()) / m}

    ns = [int(x) for x in args.n.split(",")]
    table("n (m = 1,000)", ns, [total(n, FIXED_M, method_stages(n, FIXED_M, args.dim)) for n in ns])
    ms = [int(x) for x in args.m.split(",")]
    table("m (n = 20,000)", ms, [total(FIXED_N, m, method_stages(FIXED_N, m, args.dim)) for m in ms])
    rng = np.random.default_rng(0)
    merges = []
    for shards in (2, 4, 16):
        parts = [
            (rng.integers(0, 10**6, (FIXED_M, 50)), np.sort(rng.random((FIXED_M, 50)), axis=1)) for _ in range(shards)
        ]
        merge_s, _ = seconds(lambda parts=parts: [merge_candidates(parts, 50) for _ in range(5)])
        merges.append(f"{shards} shards {merge_s / 5 * 1e3:.1f} ms")
    print(f"\nmerging the K' = 50 candidates of each shard for {FIXED_M:,} queries: " + ", ".join(merges))


if __name__ == "__main__":
    main()
