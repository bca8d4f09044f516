"""The demo valued on a GPU and on the CPU: throughput of each, and the same values to tolerance.

    bench/gpu_check.sh                     # on a machine with an NVIDIA GPU, after scripts/setup.sh
    .venv/bin/python bench/gpu_check.py --device cpu --train DIR --generated DIR   # the logic, CPU vs CPU

Runs the whole valuation twice in fresh homes: once with embedding and matching on `--device` (cuda), once
on the CPU; quality stays on the CPU both times. Prints each
run's images per second and search time from asset metadata, then compares the values per training
image: max |difference|, Spearman rank correlation, overlap of the top 100. Then NIQE alone (the quality scorer
with a device path: the default, matched_detail, is numpy on the CPU): calibrated on the CPU run's training images,
it scores the generated images on `--device` and on the CPU, milliseconds per image each \
and max |q difference|. Exits 1 beyond
either tolerance.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl

from gmv_dagster.common.sampling import seeded_rows
from gmv_dagster.method.quality import calibrate, load_quality_model
from gmv_dagster.runner import run_valuation
from gmv_dagster.sources.images import load_images


def value(home: Path, env: dict) -> tuple[pl.DataFrame, dict, float]:
    shutil.rmtree(home, ignore_errors=True)
    instance = dg.DagsterInstance.ephemeral()
    start = time.perf_counter()
    assert run_valuation(home, instance, env=env).success, f"the valuation in {home} failed"
    seconds = time.perf_counter() - start

    def metadata(asset: str) -> dict:
        mat = instance.get_latest_materialization_event(dg.AssetKey(asset)).asset_materialization
        return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}

    figures = {
        "train images/s": metadata("train_embeddings")["images_per_second"],
        "generated images/s": metadata("generated_embeddings")["images_per_second"],
        "embedding device": metadata("train_embeddings").get("device/device"),
        "index build s": metadata("train_index").get("build_seconds", "exact"),
        "search s": metadata("matches")["search_seconds"],
    }
    with duckdb.connect(str(home / "gmv.duckdb"), read_only=True) as con:
        values = con.execute("SELECT train_id, value FROM training_values ORDER BY train_id").pl()
    return values, figures, seconds


def quality_on(home: Path, device: str) -> tuple[np.ndarray, float]:
    """q of the run's generated images by NIQE (niqe_refit, calibrated as the pipeline would on the run's training
    images) scored on `device`, and ms per image. NIQE, not the default: matched_detail is numpy on the CPU whatever
    the device, so NIQE's is the quality path a GPU changes."""
    with duckdb.connect(str(home / "gmv.duckdb"), read_only=True) as con:
        train_uris = con.execute("SELECT uri FROM training_images ORDER BY id").pl()["uri"].to_list()
        uris = con.execute("SELECT uri FROM generated_images ORDER BY id").pl()["uri"].to_list()
    reference = load_images([train_uris[i] for i in seeded_rows(len(train_uris), 1000, 0)])
    model = load_quality_model(calibrate("niqe_refit", reference, "cpu", 0, home / "quality"), device)
    images = load_images(uris)
    model.score(images[:8])  # warm-up: kernels, allocator
    start = time.perf_counter()
    _, q = model.score(images)
    return q, 1000 * (time.perf_counter() - start) / max(len(images), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--work", default="/tmp/gmv_gpu_check")
    parser.add_argument("--train", help="GMV_TRAIN_SOURCE (default: the demo)")
    parser.add_argument("--generated", help="GMV_GENERATED_SOURCE (default: the demo)")
    parser.add_argument("--rtol", type=float, default=1e-3, help="max |difference| / max value allowed")
    parser.add_argument("--qtol", type=float, default=1e-3, help="max |q difference| allowed (q is in [0, 1])")
    args = parser.parse_args()
    env = dict(os.environ)
    env.update({k: v for k, v in (("GMV_TRAIN_SOURCE", args.train), ("GMV_GENERATED_SOURCE", args.generated)) if v})
    runs = {}
    for name, device in (("accelerator", args.device), ("cpu", "cpu")):
        run_env = {
            **env,
            "GMV_EMBEDDING_DEVICE": device,
            "GMV_MATCHING_DEVICE": device,
            "GMV_GENERATOR_DEVICE": device,
            "GMV_QUALITY_DEVICE": "cpu",
        }
        runs[name] = value(Path(args.work) / name, run_env)
        print(
            f"{name} ({device}): {runs[name][2]:.1f} s in all; "
            + ", ".join(f"{k} {v}" for k, v in runs[name][1].items())
        )
    a, c = runs["accelerator"][0], runs["cpu"][0]
    assert a["train_id"].equals(c["train_id"])
    diff = float(np.max(np.abs(a["value"].to_numpy() - c["value"].to_numpy())))
    scale = float(np.max(np.abs(c["value"].to_numpy())))
    spearman = float(
        pl.DataFrame({"a": a["value"], "c": c["value"]}).select(pl.corr(pl.col("a").rank(), pl.col("c").rank())).item()
    )
    top = min(100, a.height)
    overlap = len(
        set(a.sort("value", descending=True)["train_id"][:top])
        & set(c.sort("value", descending=True)["train_id"][:top])
    )
    print(
        f"values: max |difference| {diff:.3g} (max value {scale:.3g}), Spearman {spearman:.6f}, "
        f"top-{top} overlap {overlap}/{top}"
    )
    ok = diff <= args.rtol * scale
    print("same values to tolerance" if ok else f"DIFFERENT: max |difference| above {args.rtol} x max value")

    home = Path(args.work) / "cpu"
    q_device, ms_device = quality_on(home, args.device)
    q_cpu, ms_cpu = quality_on(home, "cpu")
    q_diff = float(np.max(np.abs(q_device - q_cpu))) if len(q_cpu) else 0.0
    print(
        f"quality ({len(q_cpu)} generated images): {args.device} {ms_device:.2f} ms / image, "
        f"cpu {ms_cpu:.2f} ms / image; max |q difference| {q_diff:.3g}"
    )
    q_ok = q_diff <= args.qtol
    print("same quality to tolerance" if q_ok else f"DIFFERENT: max |q difference| above {args.qtol}")
    return 0 if ok and q_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
