"""Is TracIn's near-zero LDS TracIn's own, or a bug? Two cases whose answer is known, on the demo VAE (issue 28).

    .venv/bin/python bench/tracin_sanity.py --home gmv_home [--copies 200] [--removed 500]
                                            [--markdown docs/RESULTS.md]

Reads a demo home that `gmv run` made (its training images, and the demo VAE's checkpoint with its training
snapshots: the one `demo_generator` trained on exactly these images) and runs TracIn as the reports run it
(evaluation/tracin.py: the negative ELBO's gradients at every snapshot, Kronecker-projected, factor 24):

1. Copies. `--copies` seeded training images are scored as if generated: the answer is the image itself. Printed:
   the share whose own image is TracIn's top-1 and its median rank, with TracIn's inner product (as the reports
   use it) and with each gradient normalised to length 1 (cosine, the normalised variant of TracIn, which takes out
   the gradient's length: a few training images of high loss have long gradients and top every list), beside
   GMValuator's learned similarity on the same copies.
2. Removal. `--removed` seeded training images are taken out and the VAE retrained with the same seed and settings;
   the answer: the removed images lose more of their fit (their negative ELBO, z = mu, rises) than kept ones, and
   TracIn's self-influence (TracIn(i, i), the sum over snapshots of lr |gradient|^2) should say which of them lose
   most. Beside it, the full data retrained with the next seed: what retraining alone moves.

Last line: `tracin_copy_top1=<x> tracin_cosine_copy_top1=<y> removed_rise=<a> kept_rise=<b> self_influence_rho=<r>`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
from scipy.stats import spearmanr

from gmv_dagster.common.files import put_marked_section
from gmv_dagster.common.sampling import seeded_rows
from gmv_dagster.demo.generator import data_key, load_generator, train_cvae
from gmv_dagster.evaluation.lds import vae_log_likelihoods
from gmv_dagster.evaluation.tracin import TracInParams, tracin_scores
from gmv_dagster.method.embedders import make_embedder
from gmv_dagster.sources.images import load_images

READING = (
    "What the two cases show: TracIn's gradients are right. With each gradient normalised, every copy finds its own "
    "training image first, which a wrong gradient or a wrong projection would not allow; with the inner product the "
    "reports use, the length of a training image's gradient decides: a few images of high loss top every list, so "
    "the own image is rarely first. And the demo VAE memorises little: an image taken out of training loses more of "
    "its fit than the images kept, but by about as much as retraining with another seed moves the fit of any image, "
    "and TracIn's self-influence ranks which removed images lose most only weakly. An attribution per generated "
    "sample has little to find in such a model; TracIn's LDS near 0 is TracIn's on this generator, not a bug."
)


def ranks_of_self(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """1-based rank of training row rows[j] in scores[j] (higher first; ties count against it)."""
    own = scores[np.arange(len(rows)), rows]
    return 1 + (scores > own[:, None]).sum(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path("gmv_home"))
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--removed", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    began = time.perf_counter()
    with duckdb.connect(str(args.home / "gmv.duckdb"), read_only=True) as con:
        manifest = con.execute("SELECT uri, content_hash, label FROM training_images").pl()
    labels = manifest["label"].to_list()
    key = data_key(manifest["content_hash"].to_list(), labels)
    checkpoints = sorted((args.home / "checkpoints").glob(f"vae-{key}-*.pt"))
    if not checkpoints:
        raise SystemExit(f"no demo VAE checkpoint trained on {args.home}'s training images (vae-{key}-*.pt): gmv run")
    generator = load_generator(checkpoints[0])
    if not generator.snapshots:
        raise SystemExit(f"{checkpoints[0]} has no training snapshots: TracIn needs them")
    train = load_images(manifest["uri"].to_list())
    params = TracInParams()
    similarity = sorted((args.home / "similarity").glob("similarity-*.pt"))
    embedder = make_embedder("similarity", weights_path=str(similarity[-1])) if similarity else None
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    # 1. copies: the answer is the image itself
    rows = np.sort(seeded_rows(len(train), args.copies, args.seed))
    copies = [train[i] for i in rows]
    found = {}
    copy_labels = [labels[i] for i in rows]
    for name, normalise in (("TracIn (inner product, as the reports)", False), ("TracIn, gradients normalised", True)):
        start = time.perf_counter()
        scores, _ = tracin_scores(
            generator.model,
            generator.snapshots,
            generator.spec.vae.learning_rate,
            generator.classes,
            train,
            labels,
            copies,
            copy_labels,
            replace(params, normalise=normalise),
        )
        ranks = ranks_of_self(scores, rows)
        found[name] = (float(np.mean(ranks == 1)), float(np.median(ranks)), time.perf_counter() - start)
    if embedder is not None:
        t = embedder.embed(train)
        ranks = ranks_of_self(embedder.embed(copies) @ t.T, rows)
        found["GMValuator's learned similarity"] = (float(np.mean(ranks == 1)), float(np.median(ranks)), 0.0)
    say(f"## TracIn's sanity: cases with a known answer ({len(train):,} training images, the demo VAE)\n")
    say(f"Copies: {args.copies} seeded training images scored as generated images (the answer: each one itself).\n")
    say("| attribution | own image top-1 | median rank of the own image |")
    say("|---|---|---|")
    for name, (top1, median, _) in found.items():
        say(f"| {name} | {top1:.3f} | {median:.0f} |")

    # 2. removal: images taken out of training lose the fit they had; TracIn's self-influence says which lose most
    removed = np.sort(seeded_rows(len(train), args.removed, args.seed + 1))
    kept = np.setdiff1d(np.arange(len(train)), removed)
    control = np.sort(np.random.default_rng(args.seed + 2).choice(kept, args.removed, replace=False))
    probe = np.r_[removed, control]
    images, probe_labels = [train[i] for i in probe], [labels[i] for i in probe]
    train_params = generator.spec.vae  # the demo VAE's own settings and seed

    def loss(model) -> np.ndarray:
        return -vae_log_likelihoods(model, generator.classes, images, probe_labels)

    full = loss(train_cvae(train, labels, train_params)[0])  # the full-data model, retrained as the others are
    reseeded = loss(train_cvae(train, labels, replace(train_params, seed=train_params.seed + 1))[0]) - full
    without = loss(train_cvae([train[i] for i in kept], [labels[i] for i in kept], train_params)[0]) - full
    n = len(removed)
    # TracIn(i, i) = sum_c lr |grad L_c(x_i)|^2: the diagonal of the removed images' scores against themselves
    removed_scores, _ = tracin_scores(
        generator.model,
        generator.snapshots,
        generator.spec.vae.learning_rate,
        generator.classes,
        images[:n],
        probe_labels[:n],
        images[:n],
        probe_labels[:n],
        params,
    )
    self_influence = np.diag(removed_scores)
    gap = without[:n] - without[n:].mean()  # each removed image's rise beyond the kept images' mean rise
    rho = float(spearmanr(self_influence, gap).statistic)
    rho_noise = float(spearmanr(self_influence, reseeded[:n] - reseeded[n:].mean()).statistic)
    say(
        f"\nRemoval: {n} seeded training images taken out and the VAE retrained (same seed and settings); the rise "
        f"of the negative ELBO (z = mu, nats) over the full-data retrain, for the removed images and {n} kept ones, "
        "beside the full data retrained with the next seed (what retraining alone moves).\n"
    )
    say("| retrain | mean rise, removed images | mean rise, kept images | Spearman(TracIn self-influence, rise) |")
    say("|---|---|---|---|")
    say(f"| without the {n} | {without[:n].mean():+.2f} | {without[n:].mean():+.2f} | {rho:+.3f} |")
    say(f"| full data, next seed | {reseeded[:n].mean():+.2f} | {reseeded[n:].mean():+.2f} | {rho_noise:+.3f} |")
    tracin, cosine = found["TracIn (inner product, as the reports)"], found["TracIn, gradients normalised"]
    last = (
        f"tracin_copy_top1={tracin[0]:.3f} tracin_cosine_copy_top1={cosine[0]:.3f} "
        f"removed_rise={without[:n].mean():+.2f} kept_rise={without[n:].mean():+.2f} self_influence_rho={rho:+.3f}"
    )
    say(f"\n`{last}` ({time.perf_counter() - began:.0f} s)")
    say(f"\n{READING}")
    if args.markdown:
        put_marked_section(
            args.markdown,
            "bench/tracin_sanity.py",
            "\n".join(lines) + f"\n\nWritten by `python bench/tracin_sanity.py --markdown {args.markdown}` on "
            f"{time.strftime('%Y-%m-%d')}.",
        )


if __name__ == "__main__":
    main()
