"""End to end on the demo: seconds per generated image, per stage and in total.

    .venv/bin/python bench/end_to_end.py [--work /tmp/gmv_e2e] [--demo-size 60000]

Values the demo (20,000 training, 1,000 generated images) in a fresh GMV_HOME, in one process, then
reads each stage's own timing from its asset metadata (the same figures the UI shows) and prints them
per generated image. Training-side stages (embedding the training set, building the index, calibrating
quality) are divided by the generated images too, as the paper's per-image figure does; the demo
generator's training is not valuation and is listed apart.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import dagster as dg

from gmv_dagster.runner import run_valuation

# (stage, asset, metadata key with its seconds)
STAGES = [
    ("embed training images", "train_embeddings", "seconds"),
    ("build the index", "train_index", "build_seconds"),
    ("calibrate quality", "quality_calibration", "fit_seconds"),
    ("embed generated images", "generated_embeddings", "seconds"),
    ("quality of generated images", "quality_scores", "score_seconds"),
    ("match (search + exact re-score)", "matches", "search_seconds"),
    ("credit", "credits", "seconds"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/gmv_e2e")
    parser.add_argument("--demo-size", type=int, default=20000, help="training images (all of Fashion-MNIST: 60000)")
    args = parser.parse_args()
    home = Path(args.work)
    shutil.rmtree(home, ignore_errors=True)
    instance = dg.DagsterInstance.ephemeral()
    start = time.perf_counter()
    run_config = {"ops": {"training_images": {"config": {"demo_size": args.demo_size}}}}
    assert run_valuation(home, instance, run_config).success
    wall = time.perf_counter() - start

    def metadata(asset: str) -> dict:
        mat = instance.get_latest_materialization_event(dg.AssetKey(asset)).asset_materialization
        return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}

    m = int(metadata("generated_images")["dagster/row_count"])
    n = int(metadata("training_images")["dagster/row_count"])
    print(f"# end to end on the demo: {n:,} training, {m:,} generated images\n")
    print("| stage | seconds | seconds per generated image |\n|---|---|---|")
    total = 0.0
    for stage, asset, key in STAGES:
        seconds = float(metadata(asset)[key])
        total += seconds
        print(f"| {stage} | {seconds:.2f} | {seconds / m:.5f} |")
    print(f"| **valuation stages, total** | {total:.2f} | **{total / m:.5f}** |")
    without_quality = total - float(metadata("quality_calibration")["fit_seconds"]) - float(metadata("quality_scores")["score_seconds"])
    print(f"| without quality (q = 1) | {without_quality:.2f} | {without_quality / m:.5f} |")
    print(f"\nwhole run, wall clock, including the demo generator's training, manifests, checks and galleries: "
          f"{wall:.1f} s")


if __name__ == "__main__":
    main()
