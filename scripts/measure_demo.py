"""Figures behind the demo defaults (README "Measured on the demo"): embedder C1 and source
retrieval, temperature, quality scorer. Run after `gmv run`:

    .venv/bin/python scripts/measure_demo.py [--home gmv_home] [--only-quality]
"""

import argparse
import time
from pathlib import Path

import duckdb
import numpy as np
import torch
import torchvision.transforms.functional as TF

from gmv_dagster.common.sampling import seeded_rows
from gmv_dagster.evaluation.pollution import near_copy
from gmv_dagster.method.credit import softmax_weights
from gmv_dagster.method.embedders import make_embedder
from gmv_dagster.method.quality import calibrate, load_quality_model
from gmv_dagster.method.search import exact_topk
from gmv_dagster.sources.images import load_images


def class_agreement(nn_idx, train_labels, gen_labels, k):
    return float(np.mean(train_labels[nn_idx[:, :k]] == gen_labels[:, None]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", default="gmv_home")
    parser.add_argument("--only-quality", action="store_true", help="only the quality scorer table")
    args = parser.parse_args()
    with duckdb.connect(str(Path(args.home) / "gmv.duckdb"), read_only=True) as con:
        train = con.execute("SELECT uri, label FROM training_images").pl()
        gen = con.execute("SELECT uri, label FROM generated_images").pl()
    train_img, gen_img = load_images(train["uri"].to_list()), load_images(gen["uri"].to_list())
    tl, gl = train["label"].to_numpy(), gen["label"].to_numpy()
    rng = np.random.default_rng(0)
    src = seeded_rows(len(train_img), 500, 1)
    # near-copies: shifted one pixel, mild noise and contrast change
    copies = [near_copy(train_img[i], rng) for i in src]
    print(f"n_train={len(train_img)} n_generated={len(gen_img)}\n")
    if not args.only_quality:  # the quality rows draw from rng only after the near-copies: same either way
        print("| embedder | C1@1 | C1@10 | source top-1 | source in top-10 | ms / image (embed) |")
        print("|---|---|---|---|---|---|")
        for name, size in [("pixels", 32), ("pixels", 28), ("efficientnet_lite0", 32), ("efficientnet_lite0", 64)]:
            emb = make_embedder(name, size)
            t = time.perf_counter()
            te = emb.embed(train_img)
            ms = (time.perf_counter() - t) / len(train_img) * 1000
            ge, ce = emb.embed(gen_img), emb.embed(copies)
            nn, _ = exact_topk(te, ge, 10)
            cn, _ = exact_topk(te, ce, 10)
            top1, top10 = np.mean(cn[:, 0] == src), np.mean((cn == src[:, None]).any(1))
            print(
                f"| {name} {size}px | {class_agreement(nn, tl, gl, 1):.3f} | {class_agreement(nn, tl, gl, 10):.3f} "
                f"| {top1:.3f} | {top10:.3f} | {ms:.2f} |"
            )
            if name == "pixels" and size == 32:
                nn_idx, pix_dist = exact_topk(te, ge, 10)
        print("\ntemperature (pixels, k=10): weight on top-1, normalised entropy of w, credit-weighted C1")
        print("| tau | mean top-1 weight | entropy / log k | weighted C1 |\n|---|---|---|---|")
        same = (tl[nn_idx] == gl[:, None]).astype(float)
        print(
            f"(distance spread: median d1={np.median(pix_dist[:, 0]):.4f}, "
            f"median d10-d1={np.median(pix_dist[:, 9] - pix_dist[:, 0]):.4f})"
        )
        for tau in [0.001, 0.003, 0.01, 0.03, 0.1, 1.0]:
            w = softmax_weights(pix_dist, tau)
            ent = -(w * np.log(np.maximum(w, 1e-300))).sum(1) / np.log(10)
            print(f"| {tau} | {w[:, 0].mean():.3f} | {ent.mean():.3f} | {(w * same).sum(1).mean():.3f} |")

    print("\nquality (median q; raw score in brackets), 1000 training images as reference")
    reference = [train_img[i] for i in seeded_rows(len(train_img), 1000, 0)]
    test = np.stack([train_img[i] for i in seeded_rows(len(train_img), 200, 7)])
    sets = {
        "clean (training)": test,
        "uniform noise": rng.integers(0, 256, test.shape, dtype=np.uint8),
        "Gaussian blur sigma 3": TF.gaussian_blur(torch.from_numpy(test)[:, None], 9, 3.0)[:, 0].numpy(),
        "clean + noise sd 0.3": np.clip(test + rng.normal(0, 76, test.shape), 0, 255).astype(np.uint8),
        "demo generated (VAE)": np.stack(gen_img[:200]),
    }
    print("| images | niqe_refit | piqe |\n|---|---|---|")
    models = {
        m: load_quality_model(calibrate(m, reference, seed=0, work_dir=Path(args.home) / "quality", input_size=64))
        for m in ("niqe_refit", "piqe")
    }
    for name, images in sets.items():
        cells = []
        for m in models.values():
            raw, q = m.score(list(images))
            cells.append(f"{np.median(q):.2f} ({np.median(raw):.1f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
