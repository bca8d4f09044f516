"""End to end on the demo, the way a user pays: the one-off training side, then the marginal cost of a batch.

    .venv/bin/python bench/end_to_end.py [--work /tmp/gmv_e2e] [--demo-size 60000] [--batch-size 1000]

1. Values the demo (`--demo-size` training images, 1,000 generated) in a fresh GMV_HOME, in one process.
   The one-off cost is the training side's stages: the similarity model where the embedder has one, the
   training embeddings, the index, the credit temperature, the quality calibration and training_details \
(each stage's seconds from its asset metadata,
   the figures the UI shows). The demo generator's training is not valuation and is not counted.
2. Drops new batches (`--batches` of them, each `--batch-size` other Fashion-MNIST test images standing in for new
   generations) into the inbox one after another and values each against the existing index and calibration, as
   the inbox sensor does. The marginal cost of a batch is its embed + quality + match + credit seconds, per
   generated image; each batch's is printed, and the median over the batches (this machine's speed moves by a
   quarter from one minute to the next: one batch is one draw).
Last line: `marginal_ms_per_image=<median> one_off_s=<y>`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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
    ("measure training images for quality", "training_details", "seconds"),
]
MARGINAL = [
    ("embed generated images", "generated_embeddings", "seconds"),
    ("quality of generated images", "quality_scores", "score_seconds"),
    ("embed mirror images (method.flips)", "matches", "mirror_embed_seconds"),  # 0 with flips off
    ("match (search + exact re-score)", "matches", "search_seconds"),
    ("credit", "credits", "seconds"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/gmv_e2e")
    parser.add_argument("--demo-size", type=int, default=20000, help="training images (all of Fashion-MNIST: 60000)")
    parser.add_argument("--batch-size", type=int, default=1000, help="generated images of each new batch")
    parser.add_argument("--batches", type=int, default=5, help="new batches valued one after another")
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
    print(
        "\nwhole first run, wall clock (incl. the demo generator's training, manifests, checks, galleries): "
        f"{wall:.1f} s"
    )

    test_images = read_idx(DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz")
    m = args.batch_size
    if args.batches < 1 or m < 1:
        raise SystemExit("--batches and --batch-size must be at least 1")
    if args.batches * m > len(test_images):
        raise SystemExit(f"--batches x --batch-size must be at most {len(test_images):,} (the test images)")
    per_batch, walls, loads = [], [], []
    for b in range(args.batches):
        name = f"new-batch-{b + 1}"
        write_inbox_batch(inbox, name, test_images[b * m : (b + 1) * m])
        start = time.perf_counter()
        assert run_valuation(home, instance, env=env, batches=[name]).success
        walls.append(time.perf_counter() - start)
        per_batch.append([float(metadata(asset, name).get(key, 0.0)) for _, asset, key in MARGINAL])
        loads.append(float(metadata("quality_scores", name).get("load_seconds", 0.0)))
    print(
        f"\nmarginal, {args.batches} new batches of {m:,} generated images each against the existing index and "
        "calibration, valued one after another (ms per generated image):\n"
    )
    print("| stage | " + " | ".join(f"batch {b + 1}" for b in range(args.batches)) + " | median |")
    print("|---|" + "---|" * (args.batches + 1))
    totals = [sum(seconds) for seconds in per_batch]
    for i, (stage, _, _) in enumerate(MARGINAL):
        column = [seconds[i] for seconds in per_batch]
        print(
            f"| {stage} | "
            + " | ".join(f"{1000 * s / m:.3f}" for s in column)
            + f" | {1000 * statistics.median(column) / m:.3f} |"
        )
    print(
        "| **marginal total** | "
        + " | ".join(f"**{1000 * t / m:.3f}**" for t in totals)
        + f" | **{1000 * statistics.median(totals) / m:.3f}** |"
    )
    # Per step, not per image (as torch's import): the scorer's parameters and NIQE's compiled loops, loaded once.
    print(
        "\nloading the quality model in each batch's step (its parameters, NIQE's compiled loops), once per step: "
        + ", ".join(f"{s:.2f}" for s in loads)
        + " s"
    )
    print(
        "each batch's runs, wall clock (its assets, checks, then the sum over all batches): "
        + ", ".join(f"{w:.1f}" for w in walls)
        + " s"
    )
    print(f"marginal_ms_per_image={1000 * statistics.median(totals) / m:.3f} one_off_s={total:.1f}")


if __name__ == "__main__":
    main()
