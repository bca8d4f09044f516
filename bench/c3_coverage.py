"""Can C3's coverage reach 0.8? How many training images the demo's generations reach, by training set size, number
of generations and k.

    .venv/bin/python bench/c3_coverage.py [--sizes 1000 2000 5000 20000] [--samples 1000 2000 5000] [--k 10 50]
                                          [--similarity PT] [--markdown docs/RESULTS.md]

C3 (`criterion_ood`) pollutes the training set with 5% OOD images, retrains the demo VAE and values its generations.
A similarity method gives value 0 to every training image outside all samples' top k, and a clean image at 0 ties
with an OOD image at 0, so C3's AUC cannot exceed (1 + coverage) / 2 (coverage: the share of clean images with value
> 0). This script trains the VAE (the demo's settings) on seeded samples of the demo of each `--sizes`, clean plus
C3's 5% pollution as `criterion_ood` does, and prints the coverage of the clean images after each `--samples`
generations at each `--k`, with the `pixels` embedder and, with `--similarity`, a learned similarity's weights file
(exact cosine search). Last line: `coverage_max=<x>`, the largest coverage of any row.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from gmv_dagster.common.files import put_marked_section
from gmv_dagster.demo.generator import TrainParams, sample_cvae, train_cvae
from gmv_dagster.evaluation.pollution import make_pollution, pollution_count
from gmv_dagster.method.embedders import make_embedder, pixel_embedder
from gmv_dagster.sources.fashion_mnist import (
    DEBIAN_FASHION_MNIST,
    fashion_mnist_manifest,
)
from gmv_dagster.sources.images import load_images


def top_k(embedder, train: list[np.ndarray], queries: list[np.ndarray], k: int) -> np.ndarray:
    t = torch.from_numpy(embedder.embed(train))
    q = torch.from_numpy(embedder.embed(queries))
    return torch.cat([(part @ t.T).topk(k, dim=1).indices for part in q.split(1000)]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 20000])
    parser.add_argument("--samples", type=int, nargs="+", default=[1000, 2000, 5000])
    parser.add_argument("--k", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--share", type=float, default=0.05, help="OOD share of the polluted set (criterion_ood's)")
    parser.add_argument("--similarity", help="a learned similarity's weights file (similarity-*.pt of a GMV_HOME)")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    embedders = {"pixels": pixel_embedder()}
    if args.similarity:
        embedders["similarity"] = make_embedder("similarity", weights_path=args.similarity)
    say("## C3's coverage: by training set size, generations and k\n")
    say(
        "Written by `python bench/c3_coverage.py --similarity <weights> --markdown docs/RESULTS.md`. The demo VAE "
        "(its settings) retrained on a seeded sample of the demo plus C3's 5% OOD images, as `criterion_ood` does; "
        "coverage: the share of the clean training images among some generation's k nearest (exact cosine search), "
        "i.e. with value > 0. C3's AUC bound is (1 + coverage) / 2.\n"
    )
    say(
        "| clean training images | VAE training s | embedder | k | "
        + " | ".join(f"coverage after {m:,} generations" for m in args.samples)
        + " |"
    )
    say("|---|---|---|---|" + "---|" * len(args.samples))
    best = 0.0
    for size in args.sizes:
        manifest = fashion_mnist_manifest(DEBIAN_FASHION_MNIST, "train", size, 0)
        clean, labels = load_images(manifest["uri"].to_list()), manifest["label"].to_list()
        pollution = make_pollution(clean, sorted(set(labels)), pollution_count(size, args.share), 0)
        start = time.perf_counter()
        model, classes = train_cvae(clean + pollution.images, labels + pollution.labels, TrainParams())
        seconds = time.perf_counter() - start
        samples, _ = sample_cvae(model, classes, max(args.samples), seed=0)
        for name, embedder in embedders.items():
            top = top_k(embedder, clean + pollution.images, list(samples), max(args.k))
            for k in args.k:
                covs = [np.isin(np.arange(size), top[:m, :k]).mean() for m in args.samples]
                best = max(best, *covs)
                say(f"| {size:,} | {seconds:.0f} | {name} | {k} | " + " | ".join(f"{c:.3f}" for c in covs) + " |")
    if args.markdown:
        put_marked_section(args.markdown, "bench/c3_coverage.py", "\n".join(lines))
    print(f"coverage_max={best:.3f}")


if __name__ == "__main__":
    main()
