"""End to end on the demo, the way a user pays: the one-off training side, then the marginal cost of a batch.

    .venv/bin/python bench/end_to_end.py [--work /tmp/gmv_e2e] [--demo-size 60000] [--batch-size 1000]

1. Values the demo (`--demo-size` training images, 1,000 generated) in a fresh GMV_HOME, in one process.
   The one-off cost is the training side's stages: the similarity model where the embedder has one, the
   training embeddings, the index, the credit temperature, the quality calibration (each stage's seconds from its asset metadata,
   the figures the UI shows). The demo generator's training is not valuation and is not counted.
2. Drops a new batch (`--batch-size` Fashion-MNIST test images standing in for new generations) into the
   inbox and values it against the existing index and calibration, as the inbox sensor does. The marginal
   cost is that batch's embed + quality + match + credit seconds, per generated image.
Last line: `marginal_ms_per_image=<x> one_off_s=<y>`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import dagster as dg

from gmv_dagster.runner import run_valuation
from gmv_dagster.sources.batches import write_inbox_batch
from gmv_dagster.sources.fashion_mnist import DEBIAN_FASHION_MNIST
from gmv_dagster.sources.images import read_idx

# (stage, asset, metadata key with its seconds)
ONE_OFF = [
    ("train the similarity model", "similarity_model", "seconds"),
    ("embed training images", "train_embeddings", "seconds"),
    ("build the index", "train_index", "build_seconds"),
    ("fit the credit temperature", "credit_temperature", "seconds"),
    ("calibrate quality", "quality_calibration", "fit_seconds"),
]
MARGINAL = [
    ("embed generated images", "generated_embeddings", "seconds"),
    ("quality of generated images", "quality_scores", "score_seconds"),
    ("match (search + exact re-score)", "matches", "search_seconds"),
    ("credit", "credits", "seconds"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/gmv_e2e")
    parser.add_argument("--demo-size", type=int, default=20000, help="training images (all of Fashion-MNIST: 60000)")
    parser.add_argument("--batch-size", type=int, default=1000, help="generated images of the new batch")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    home, inbox = work / "home", work / "inbox"
    env = {**os.environ, "GMV_INBOX": str(inbox)}
    instance = dg.DagsterInstance.ephemeral()
    run_config = {"ops": {"training_images": {"config": {"demo_size": args.demo_size}}}}
    start = time.perf_counter()
    assert run_valuation(home, instance, run_config, env=env).success
    wall = time.perf_counter() - start

    def metadata(asset: str, partition: str | None = None) -> dict | None:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        if event is None:
            return None
        mat = event.asset_materialization
        assert partition is None or mat.partition == partition, (asset, mat.partition)
        return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}

    n = int(metadata("training_images")["dagster/row_count"])
    print(f"# end to end on the demo: {n:,} training images\n")
    print("one-off, the training side:\n\n| stage | seconds | share |\n|---|---|---|")
    # A stage without its figure did not run (no similarity to train for a backbone that is not learned).
    one_off = {stage: float(m[key]) for stage, asset, key in ONE_OFF if key in (m := metadata(asset) or {})}
    total = sum(one_off.values())
    for stage, seconds in one_off.items():
        print(f"| {stage} | {seconds:.2f} | {seconds / total:.0%} |")
    print(f"| **one-off total** | **{total:.2f}** | |")
    print(f"\nwhole first run, wall clock (incl. the demo generator's training, manifests, checks, galleries): {wall:.1f} s")

    images = read_idx(DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz")[: args.batch_size]
    write_inbox_batch(inbox, "new-batch", images)
    start = time.perf_counter()
    assert run_valuation(home, instance, env=env, batches=["new-batch"]).success
    batch_wall = time.perf_counter() - start
    m = len(images)
    print(f"\nmarginal, a new batch of {m:,} generated images against the existing index and calibration:\n")
    print("| stage | seconds | ms per generated image |\n|---|---|---|")
    marginal = 0.0
    for stage, asset, key in MARGINAL:
        seconds = float(metadata(asset, "new-batch")[key])
        marginal += seconds
        print(f"| {stage} | {seconds:.2f} | {1000 * seconds / m:.3f} |")
    print(f"| **marginal total** | **{marginal:.2f}** | **{1000 * marginal / m:.3f}** |")
    # Per step, not per image (as torch's import): the scorer's parameters and NIQE's compiled loops, loaded once.
    load = metadata("quality_scores", "new-batch").get("load_seconds")
    if load is not None:
        print(f"\nloading the quality model in the batch's step (its parameters, NIQE's compiled loops), once per step: "
              f"{float(load):.2f} s")
    print(f"\nthe batch's runs, wall clock (its assets, checks, then the sum over all batches): {batch_wall:.1f} s")
    print(f"marginal_ms_per_image={1000 * marginal / m:.3f} one_off_s={total:.1f}")


if __name__ == "__main__":
    main()
