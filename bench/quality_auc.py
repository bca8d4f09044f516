"""How well q ranks clean images above degraded copies, per domain: AUC of q (clean above degraded).

    .venv/bin/python bench/quality_auc.py [--reference 1000] [--test 200]

Domains: Fashion-MNIST (28 px grey; training images as reference, others as test) and colour crops of
scikit-learn's two sample photos at 32, 64 and 128 px (evaluation.near_copies.photo_crops). The scorer is
calibrated on the reference images exactly as the quality_calibration asset does (method.quality.calibrate);
the test images are scored clean, blurred (PIL Gaussian, sigma 1, 2 and 3) and with Gaussian noise (sd 10 and
25 grey levels, seeded). Prints one row per domain: AUCs (ties count half), the median q of the heaviest blur
(it should be near 0), calibration and scoring time. `--block 48` measures a smaller NIQE block (the
comparison in docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from gmv_dagster.evaluation.criteria import rank_auc
from gmv_dagster.evaluation.near_copies import photo_crops
from gmv_dagster.method.niqe import BLOCK
from gmv_dagster.method.quality import calibrate, load_quality_model
from gmv_dagster.sources.fashion_mnist import DEBIAN_FASHION_MNIST
from gmv_dagster.sources.images import read_idx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=int, default=1000)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--block", type=int, default=BLOCK, help="NIQE's block size in px")
    args = parser.parse_args()
    r, t = args.reference, args.test
    fm = read_idx(DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz")
    domains = {"Fashion-MNIST, 28 px grey": (list(fm[:r]), list(fm[50000 : 50000 + t]))}
    for size in (32, 64, 128):
        crops = photo_crops(r + t, size=size, seed=0)
        domains[f"colour photo crops, {size} px"] = (crops[:r], crops[r:])
    print(
        "| images | NIQE block px | AUC blur sigma 1 | blur sigma 2 | noise sd 10 | noise sd 25 | median q clean "
        "| median q blur sigma 3 | calibration s | scoring ms per image |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, (reference, test) in domains.items():
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        calibration = calibrate(
            "niqe_refit", reference, seed=0, work_dir=Path(tempfile.mkdtemp()), niqe_block=args.block
        )
        seconds = time.perf_counter() - start
        model = load_quality_model(calibration)
        start = time.perf_counter()
        clean = model.score(test)[1]
        ms = 1000 * (time.perf_counter() - start) / len(test)
        degraded = [[np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(s))) for i in test] for s in (1, 2)]
        degraded += [
            [np.clip(i + rng.normal(0, sd, i.shape), 0, 255).astype(np.uint8) for i in test] for sd in (10, 25)
        ]
        aucs = [rank_auc(clean, model.score(images)[1]) for images in degraded]
        heavy = model.score([np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(3))) for i in test])[1]
        print(
            f"| {name} | {calibration.niqe_block} | "
            + " | ".join(f"{a:.3f}" for a in aucs)
            + f" | {np.median(clean):.2f} | {np.median(heavy):.2f} | {seconds:.1f} | {ms:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
