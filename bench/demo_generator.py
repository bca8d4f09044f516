"""The demo generator's samples: do they look like their class, and how much of the training set do they reach?

    .venv/bin/python bench/demo_generator.py [--demo-size 20000] [--epochs 15] [--priors 0 1 10]

Trains the demo VAE (`demo.generator.train_cvae`, the demo's seeded sample of Fashion-MNIST) once per sampling
prior (`prior_components`: 0 = N(0, I), the old default; k = k Gaussian components per class fitted to the
training images' latent means) and samples 10,000 images, classes in turn. With the `pixels` embedder and exact
cosine search (brute force) it prints, per prior: C1@10 of the first 1,000 samples (share of their 10 nearest
training images with the sample's class; the reference is real Fashion-MNIST test images, printed first) and the
coverage (share of training images in some sample's top 10, i.e. with value > 0 at k = 10) after 1,000, 5,000
and 10,000 samples. Last line: `c1_at_10=<x> coverage_1000=<y>` for the last prior. `--markdown PAGE` also writes
the table into PAGE as the block `bench/demo_generator.py` (kept by `gmv report --markdown`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from gmv_dagster.common.files import put_marked_section
from gmv_dagster.demo.generator import TrainParams, sample_cvae, train_cvae
from gmv_dagster.method.embedders import pixel_embedder
from gmv_dagster.sources.fashion_mnist import (
    DEBIAN_FASHION_MNIST,
    fashion_mnist_manifest,
)
from gmv_dagster.sources.images import load_images

SAMPLES = (1000, 5000, 10000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-size", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=TrainParams.epochs)
    parser.add_argument("--priors", type=int, nargs="+", default=[0, 1, TrainParams.prior_components])
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    manifest = fashion_mnist_manifest(DEBIAN_FASHION_MNIST, "train", args.demo_size, 0)
    images, labels = load_images(manifest["uri"].to_list()), manifest["label"].to_list()
    embedder = pixel_embedder()
    train = torch.from_numpy(embedder.embed(images))
    train_labels = np.asarray(labels)

    def nearest(query: list[np.ndarray], k: int = 10) -> np.ndarray:
        q = torch.from_numpy(embedder.embed(query))
        return torch.cat([(part @ train.T).topk(k, dim=1).indices for part in q.split(1000)]).numpy()

    test = fashion_mnist_manifest(DEBIAN_FASHION_MNIST, "test", 1000, 0)
    test_top = nearest(load_images(test["uri"].to_list()))
    test_c1 = float((train_labels[test_top] == np.asarray(test["label"].to_list())[:, None]).mean())
    say(
        f"## The demo generator ({len(images):,} training images, {args.epochs} epochs; "
        "pixels embedder, exact search)\n"
    )
    say(
        "Written by `python bench/demo_generator.py --markdown docs/RESULTS.md`. C1@10 of 1,000 samples; "
        "coverage: share of the training images among some sample's 10 nearest.\n"
    )
    say("| samples | training s | C1@10 | " + " | ".join(f"coverage after {m:,}" for m in SAMPLES) + " |")
    say("|---|---|---|" + "---|" * len(SAMPLES))
    say(
        f"| real test images (1,000, the reference) | | {test_c1:.3f} | {len(np.unique(test_top)) / len(images):.3f} |"
        + " |" * (len(SAMPLES) - 1)
    )
    c1 = cov = 0.0
    for k in args.priors:
        start = time.perf_counter()
        model, classes = train_cvae(images, labels, TrainParams(epochs=args.epochs, prior_components=k))
        seconds = time.perf_counter() - start
        samples, sample_labels = sample_cvae(model, classes, max(SAMPLES), seed=0)
        top = nearest(list(samples))
        c1 = float((train_labels[top[:1000]] == np.asarray(sample_labels[:1000])[:, None]).mean())
        covs = [len(np.unique(top[:m])) / len(images) for m in SAMPLES]
        cov = covs[0]
        name = "VAE, prior N(0, I)" if k == 0 else f"VAE, prior {k} Gaussian{'s' if k > 1 else ''} per class"
        say(f"| {name} | {seconds:.0f} | {c1:.3f} | " + " | ".join(f"{c:.3f}" for c in covs) + " |")
    if args.markdown:
        put_marked_section(args.markdown, "bench/demo_generator.py", "\n".join(lines))
    print(f"c1_at_10={c1:.3f} coverage_1000={cov:.3f}")


if __name__ == "__main__":
    main()
